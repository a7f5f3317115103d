"""Properties every jaxmtl method must have, applied to each method in turn.

Each property runs on every method, so each method gets fewer hypothesis examples
(``PER_METHOD``) than a single-function property would: over the registry that is
still close to a thousand Jacobians per property.

Method-specific guarantees (non-conflict, permutation invariance, scale
behaviour) are applied to the methods that claim them, per the registry in
``tests/methods_registry.py``.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import jacobians
from tests.methods_registry import SPECS, aggregate, aggregate_and_weights, built, inputs

ALL = sorted(SPECS)
PER_METHOD = settings(max_examples=25)
_PAIRS = {   # two tasks in a plane, padded with zero coordinates to a shape of SHAPES
    "identical": [[1.0, 2.0], [1.0, 2.0]],
    "opposite": [[1.0, 2.0], [-1.0, -2.0]],
    "colinear": [[1.0, 2.0], [3.0, 6.0]],
    "tiny": [[1e-30, 0.5e-30], [-0.2e-30, 1e-30]],
    "huge": [[1e30, 0.5e30], [-0.2e30, 1e30]],
    "one_zero_task": [[0.0, 0.0], [1.0, -2.0]],
}
# Degenerate Jacobians in the shapes the property tests draw (conftest.SHAPES): every new shape
# compiles every method again.
DEGENERATE = {
    "zero": np.zeros((3, 8)),
    "one_task": np.ones((1, 3)),
    "t_gt_p": np.random.default_rng(0).normal(size=(5, 3)),
    **{case: np.pad(np.array(j), ((0, 0), (0, 6))) for case, j in _PAIRS.items()},
}


@pytest.mark.parametrize("name", ALL)
@PER_METHOD
@given(j=jacobians())
def test_output_is_finite(name, j):
    out = aggregate(name, j)
    assert out.shape == j.shape[1:]
    assert np.all(np.isfinite(out)), out


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("name", ALL)
def test_degenerate_input_is_finite(name, case):
    out = aggregate(name, DEGENERATE[case].astype(np.float32))
    assert np.all(np.isfinite(out)), out


@pytest.mark.parametrize("name", ALL)
def test_zero_jacobian_gives_zero_update(name):
    np.testing.assert_array_equal(aggregate(name, np.zeros((3, 8), np.float32)), 0.0)


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].one_task_identity])
def test_one_task_returns_its_gradient(name):
    g = np.array([[0.3, -1.2, 2.0]], np.float32)
    np.testing.assert_allclose(aggregate(name, g), g[0], rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].non_conflicting])
@PER_METHOD
@given(j=jacobians(scales=False, tasks=(2, 3, 5), params=(8,), full_rank=True))
def test_non_conflicting(name, j):
    # full rank: at Pareto-stationary points (rank-deficient J) d is ~0 and J d is round-off.
    # The methods' ridges (eps <= 1e-4 on the trace-normalised Gramian) allow, by their KKT
    # conditions, (J d)_t >= -eps * trace(G) * w_t; float32 adds ~1e-5 relative.
    d, w = aggregate_and_weights(name, j)
    j = j.astype(np.float64)
    tr = np.trace(j @ j.T)
    slack = 1e-4 * tr * np.abs(w) + 1e-5 * tr * np.abs(w).max() + 1e-6
    assert np.all(j @ d >= -slack), (j @ d, slack)


def draw_jacobian(data, name):
    """Any Jacobian, or one of full row rank for methods whose weights are only unique then."""
    if SPECS[name].full_rank_only:
        return data.draw(jacobians(scales=False, tasks=(1, 2, 3), params=(3, 8), full_rank=True))
    return data.draw(jacobians(scales=False))


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].permutation == "invariant"])
@PER_METHOD
@given(data=st.data())
def test_permutation_invariant(name, data):
    j = draw_jacobian(data, name)
    perm = np.random.default_rng(0).permutation(len(j))
    losses = np.linspace(1.0, 2.0, len(j))
    a, b = aggregate(name, j[perm], losses=losses[perm]), aggregate(name, j, losses=losses)
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * (1 + np.abs(b).max()))


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].scale])
@PER_METHOD
@given(data=st.data())
def test_positive_scaling(name, data):
    j = draw_jacobian(data, name)
    c = 37.0
    expected = aggregate(name, j) * (c if SPECS[name].scale == "linear" else 1.0)
    np.testing.assert_allclose(aggregate(name, c * j), expected, rtol=2e-3,
                               atol=2e-3 * (1 + np.abs(expected).max()))


@pytest.mark.parametrize("name", ALL)
def test_bfloat16_matches_float32(name):
    j = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0], [0.5, -2.0, 1.0]], np.float32)
    m, _ = built(name, 3)
    params, kwargs = inputs(name, jnp.asarray(j, jnp.bfloat16))
    out16, _ = m.update(jnp.asarray(j, jnp.bfloat16), m.init(params), params, **kwargs)
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out16, np.float32), aggregate(name, j), rtol=0.05, atol=0.05)


class TestVariants(chex.TestCase):
    @chex.variants(without_jit=True)   # eager against jitted (a with_jit variant compared jit with jit)
    @parameterized.named_parameters(*((name, name) for name in ALL))   # one test a method: spread over workers
    def test_jit_matches_no_jit(self, name):
        rng = np.random.default_rng(1)
        tree = {"w": jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32),
                "b": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}
        params = jax.tree.map(lambda x: jnp.zeros(x.shape[1:]), tree)
        m, jitted = built(name, 3)
        kwargs = {"losses": jnp.asarray([1.0, 2.0, 0.5])}
        if SPECS[name].extra_batches:
            kwargs["extra_task_grads"] = (tree, tree)
        out, _ = self.variant(m.update)(tree, m.init(params), params, **kwargs)
        ref, _ = jitted(tree, m.init(params), params, **kwargs)
        chex.assert_trees_all_close(out, ref, rtol=1e-4, atol=1e-5, custom_message=name)


@pytest.mark.parametrize("name", ALL)
def test_pytree_input_equals_flat_input(name):
    rng = np.random.default_rng(3)
    tree = {"a": rng.normal(size=(3, 2, 2)).astype(np.float32), "b": rng.normal(size=(3, 5)).astype(np.float32)}
    flat = np.concatenate([tree["a"].reshape(3, -1), tree["b"]], axis=1)
    if name in ("graddrop",):  # coordinate-wise random masks follow the leaf layout
        pytest.skip("random per-leaf masks: not layout-independent")
    m, update = built(name, 3)
    params = jax.tree.map(lambda x: jnp.zeros(x.shape[1:]), tree)
    kwargs = {"losses": jnp.asarray([1.0, 1.5, 2.0])}
    if SPECS[name].extra_batches:
        kwargs["extra_task_grads"] = (tree, tree)
    out, _ = update(tree, m.init(params), params, **kwargs)
    np.testing.assert_allclose(np.concatenate([np.ravel(out["a"]), out["b"]]), aggregate(name, flat),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_chains_with_adam_in_scan(name):
    m, _ = built(name, 2)
    j = jnp.asarray([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    params = jnp.ones((3,))
    tx = optax.chain(m, optax.adam(1e-2))
    _, kwargs = inputs(name, j)

    def body(carry, _):
        p, s = carry
        u, s = tx.update(j, s, p, **kwargs)
        return (optax.apply_updates(p, u), s), u

    (p, state), us = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=3))(params)
    assert us.shape == (3, 3) and np.all(np.isfinite(us))
    assert not np.allclose(p, params)


@pytest.mark.parametrize("name", ALL)
def test_mismatched_task_axes_raise(name):
    m, _ = built(name, 2)
    j = {"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}
    params = {"a": jnp.zeros(3), "b": jnp.zeros(3)}
    with pytest.raises(ValueError, match="disagree on the number of tasks"):
        m.update(j, m.init(params), params, losses=jnp.ones(2))


@pytest.mark.parametrize("name", ALL)
def test_wrong_losses_length_raises(name):
    m, _ = built(name, 2)
    params = jnp.zeros(3)
    with pytest.raises(ValueError, match=r"losses has shape \(3,\) but task_grads has 2 tasks"):
        m.update(jnp.ones((2, 3)), m.init(params), params, losses=jnp.ones((3,)))


@pytest.mark.parametrize("name", ALL)
def test_params_shape_mismatch_raises(name):
    m, _ = built(name, 2)
    with pytest.raises(ValueError, match=r"expected \(T, \*param.shape\) = \(2, 4\)"):
        m.update({"w": jnp.ones((2, 3))}, m.init({"w": jnp.zeros(4)}), {"w": jnp.ones((4,))},
                 losses=jnp.ones(2))


@pytest.mark.parametrize("name", ALL)
def test_num_tasks_mismatch_raises(name):
    m, _ = built(name, 3)
    params = jnp.zeros(3)
    with pytest.raises(ValueError, match="num_tasks=3"):
        m.update(jnp.ones((2, 3)), m.init(params), params, losses=jnp.ones(2))


def test_scalar_leaf_raises():
    m, _ = built("upgrad", 2)
    with pytest.raises(ValueError, match="is a scalar"):
        m.update({"w": jnp.ones(())}, m.init(None))


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].needs_losses])
def test_missing_losses_raise(name):
    m, _ = built(name, 2)
    params = jnp.zeros(3)
    with pytest.raises(ValueError, match="needs the task losses"):
        m.update(jnp.ones((2, 3)), m.init(params), params)


@pytest.mark.parametrize("name", [n for n in ALL if SPECS[n].needs_losses])
@pytest.mark.parametrize("losses", [[0.0, 1.0, 2.0], [1e-30, 1.0, 1e30], [0.0, 0.0, 0.0]],
                         ids=["zero", "tiny_and_huge", "all_zero"])
def test_extreme_losses_give_finite_output(name, losses):
    j = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0], [0.5, -2.0, 1.0]], np.float32)
    out = aggregate(name, j, losses=np.asarray(losses, np.float32))
    assert np.all(np.isfinite(out)), out
