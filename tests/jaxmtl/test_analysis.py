"""jaxmtl.analysis: conflict statistics, per-sample Jacobians, Pareto fronts, probes, delta_t."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmtl.analysis import (conflict_statistics, corruption_delta, pairwise_similarity, pareto_counts,
                             pareto_mask, per_sample_jacobian, relative_difference, spread)

S2 = np.sqrt(2.0)


def test_pairwise_similarity_by_hand():
    v = jnp.asarray([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])  # pairs (0,1), (0,2), (1,2)
    out = pairwise_similarity(v)
    np.testing.assert_allclose(out["cosine"], [0.0, -1 / S2, 1 / S2], atol=1e-6)
    np.testing.assert_allclose(out["magnitude"], [0.8, 2 * S2 / 3, 4 * S2 / 6], atol=1e-6)
    np.testing.assert_allclose(out["dot"], [0.0, -1.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(out["sign_conflict"], [0.0, 0.5, 0.0])


def test_zero_gradients_are_neutral_not_nan():
    out = pairwise_similarity(jnp.asarray([[0.0, 0.0], [0.0, 0.0], [3.0, -1.0]]))
    np.testing.assert_allclose(out["cosine"], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(out["magnitude"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(out["dot"], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_scales_and_dtypes(scale, dtype):
    v = jnp.asarray([[1.0, 2.0, -1.0], [2.0, -1.0, 0.5], [-1.0, -2.0, 1.0]]) * scale
    out = pairwise_similarity(v.astype(dtype))
    ref = pairwise_similarity(jnp.asarray([[1.0, 2.0, -1.0], [2.0, -1.0, 0.5], [-1.0, -2.0, 1.0]]))
    for k in ("cosine", "magnitude", "sign_conflict"):
        assert np.all(np.isfinite(out[k]))
        np.testing.assert_allclose(out[k], ref[k], atol=2e-2 if dtype == jnp.bfloat16 else 1e-5)
    np.testing.assert_allclose(out["cosine"][1], -1.0, atol=1e-2)  # opposite gradients


@settings(max_examples=50)   # eager calls: each example dispatches every op
@given(st.integers(2, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_matches_numpy_and_bounds(n, p, seed):
    v = np.random.default_rng(seed).normal(size=(n, p)).astype(np.float32)
    out = {k: np.asarray(x) for k, x in pairwise_similarity(jnp.asarray(v)).items()}
    i, j = np.triu_indices(n, 1)
    norms = np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(out["cosine"], np.sum(v[i] * v[j], 1) / (norms[i] * norms[j]), atol=1e-4)
    np.testing.assert_allclose(out["magnitude"], 2 * norms[i] * norms[j] / (norms[i] ** 2 + norms[j] ** 2),
                               atol=1e-5)
    assert np.all(np.abs(out["cosine"]) <= 1) and np.all((out["magnitude"] >= 0) & (out["magnitude"] <= 1))
    # reversing the rows reverses nothing but the pair order: the set of values is the same
    rev = pairwise_similarity(jnp.asarray(v[::-1]))
    np.testing.assert_allclose(np.sort(rev["cosine"]), np.sort(out["cosine"]), atol=1e-5)


def test_conflict_statistics_groups():
    g = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 5))
    out = conflict_statistics(g)
    assert {k: len(v["cosine"]) for k, v in out.items()} == {
        "inter_task": 3, "inter_sample": 6, "inter_task_batch": 1, "inter_sample_batch": 3}
    np.testing.assert_allclose(out["inter_task"]["cosine"][1], pairwise_similarity(g[1])["cosine"][0], rtol=1e-6)
    np.testing.assert_allclose(out["inter_sample"]["dot"][:3], pairwise_similarity(g[:, 0])["dot"], rtol=1e-5)
    np.testing.assert_allclose(out["inter_task_batch"]["cosine"], pairwise_similarity(g.mean(0))["cosine"], rtol=1e-5)
    np.testing.assert_allclose(out["inter_sample_batch"]["magnitude"],
                               pairwise_similarity(g.mean(1))["magnitude"], rtol=1e-5)
    with pytest.raises(ValueError, match="samples, tasks, params"):
        conflict_statistics(g[0])
    with pytest.raises(ValueError, match=r"\(N, P\)"):
        pairwise_similarity(g)


def test_spread_by_hand():
    s = spread([-1.0, 0.0, 1.0, 2.0])
    assert s["mean"] == 0.5 and s["std"] == pytest.approx(np.sqrt(1.25))
    assert s["neg_fraction"] == 0.25 and s["pos_mean"] == 1.5 and s["neg_mean"] == -1.0 and s["n"] == 4
    assert s["p2.5"] == pytest.approx(-0.925) and s["p97.5"] == pytest.approx(1.925)
    assert np.isnan(spread([1.0])["neg_mean"])
    with pytest.raises(ValueError, match="empty"):
        spread([])


def _linear_loss(params, batch):
    """Task t on sample s: h_t * <x_s, w> + b_t; mean over the batch."""
    z = batch["x"] @ params["w"]
    return jnp.mean(params["h"][:, None] * z[None] + params["b"][:, None], axis=1)


def test_per_sample_jacobian_by_hand():
    params = {"w": jnp.asarray([1.0, -1.0, 2.0]), "h": jnp.asarray([2.0, -3.0]), "b": jnp.zeros(2)}
    x = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, -1.0]])
    losses, grads = jax.jit(per_sample_jacobian(_linear_loss, shared={"w": True, "h": False, "b": False}))(
        params, {"x": x})
    assert losses.shape == (4, 2) and grads.shape == (4, 2, 3)
    np.testing.assert_allclose(grads, params["h"][None, :, None] * x[:, None, :])  # d/dw = h_t x_s
    np.testing.assert_allclose(losses, (x @ params["w"])[:, None] * params["h"][None])
    _, full = per_sample_jacobian(_linear_loss, chunk_size=None)(params, {"x": x})
    assert full.shape == (4, 2, 3 + 2 + 2)  # every leaf, flattened in tree order (b, h, w)
    np.testing.assert_allclose(full[:, :, 4:], grads)


def test_per_sample_jacobian_errors():
    params = {"w": jnp.ones(3), "h": jnp.ones(2), "b": jnp.zeros(2)}
    fn = per_sample_jacobian(_linear_loss)
    with pytest.raises(ValueError, match="leading sample axis"):
        fn(params, {"x": jnp.ones((4, 3)), "y": jnp.ones(5)})
    with pytest.raises(ValueError, match="selects no parameter"):
        per_sample_jacobian(_linear_loss, shared=lambda p: jax.tree.map(lambda _: False, p))(
            params, {"x": jnp.ones((2, 3))})


def test_pareto_by_hand():
    pts = [[1, 1], [2, 0], [0, 2], [0.5, 0.5], [1, 1]]
    np.testing.assert_array_equal(pareto_mask(pts, [True, True]), [True, True, True, False, True])
    np.testing.assert_array_equal(pareto_mask(pts, [False, False]), [False, True, True, True, False])
    np.testing.assert_array_equal(pareto_mask(pts, [True, False]), [False, True, False, False, False])
    assert pareto_counts(pts, ["a", "b", "a", "b", "b"], [True, True]) == {"a": 2, "b": 2}
    with pytest.raises(ValueError, match="2 metrics"):
        pareto_mask(pts, [True])
    with pytest.raises(ValueError, match="NaN"):
        pareto_mask([[np.nan, 1.0]], [True, True])
    with pytest.raises(ValueError, match="labels"):
        pareto_counts(pts, ["a"], [True, True])


@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_pareto_front_is_mutually_non_dominated(n, k, seed):
    pts = np.random.default_rng(seed).integers(0, 4, (n, k)).astype(float)
    mask = pareto_mask(pts, [True] * k)
    assert mask.any()
    front = pts[mask]
    for a in front:  # nothing dominates a front point; every other point is dominated by one
        assert not np.any(np.all(pts >= a, 1) & np.any(pts > a, 1))
    for b in pts[~mask]:
        assert np.any(np.all(front >= b, 1) & np.any(front > b, 1))


def test_relative_difference_by_hand():
    a = {"enc": jnp.asarray([1.0, 2.0]), "head": jnp.asarray([4.0])}
    b = {"enc": jnp.asarray([1.0, 2.5]), "head": jnp.asarray([4.0])}
    assert float(relative_difference(b, a)) == pytest.approx(0.5 / 4)
    assert float(jax.jit(relative_difference, static_argnums=2)(b, a, lambda p: {"enc": True, "head": False})) \
        == pytest.approx(0.5 / 2)
    assert float(relative_difference(a, a)) == 0.0
    zero = jax.tree.map(jnp.zeros_like, a)
    assert float(relative_difference(zero, zero)) == 0.0 and float(relative_difference(a, zero)) == np.inf
    with pytest.raises(ValueError, match="tree structures"):
        relative_difference({"enc": a["enc"]}, a)
    with pytest.raises(ValueError, match="selects no parameter"):
        relative_difference(a, a, {"enc": False, "head": False})


def test_corruption_delta_by_hand():
    # MTL keeps 80% and 60%, STL 90% twice: MTL copes worse, delta = +0.2
    assert corruption_delta([[0.8, 0.6]], [[0.9, 0.9]], 1.0, 1.0, True) == pytest.approx(0.2)
    assert corruption_delta([[0.4, 0.3]], [[0.9, 0.9]], 0.5, 1.0, True) == pytest.approx(0.2)  # relative
    assert corruption_delta([[2.0]], [[3.0]], 1.0, 1.0, False) == pytest.approx(-1.0)  # lower is better
    with pytest.raises(ValueError, match="same non-empty shape"):
        corruption_delta([[1.0]], [[1.0, 2.0]], 1.0, 1.0, True)
    with pytest.raises(ValueError, match="clean metric of 0"):
        corruption_delta([[1.0]], [[1.0]], 0.0, 1.0, True)
