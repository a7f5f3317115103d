"""jaxmtl.analysis trajectory quantities (Paper B): sharpness, Fisher trace, noise scale,
coherence and update cosines, against closed forms."""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxmtl import analysis
from jaxmtl.analysis import hessian_top_eigenvalue, per_sample_jacobian

KEY = jax.random.PRNGKey(0)
RNG = lambda seed: np.random.default_rng(seed)  # test data from NumPy: no eager PRNG compilations

# the tests call jitted versions (one compilation per shape, not one per primitive);
# test_jit_matches_eager compares them with the eager functions
fisher_trace = jax.jit(analysis.fisher_trace, static_argnames="task_axis")
gradient_coherence = jax.jit(analysis.gradient_coherence, static_argnames="task_axis")
gradient_noise_scale = jax.jit(analysis.gradient_noise_scale, static_argnames="task_axis")
update_cosines = jax.jit(analysis.update_cosines, static_argnames="convention")


def _rotated(eigenvalues, seed=0):
    """A symmetric matrix with the given spectrum in a random orthonormal basis (float64)."""
    lam = np.asarray(eigenvalues, np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(lam.size, lam.size)))
    return (q * lam) @ q.T


@partial(jax.jit, static_argnames=("num_iters", "which"))
def _quadratic_top(a, x, key, num_iters=20, which="largest"):
    """Top eigenvalue of the Hessian ``a`` of ``0.5 x^T a x`` (one compilation per shape)."""
    return hessian_top_eigenvalue(lambda y: 0.5 * y @ a @ y, x, key=key, num_iters=num_iters, which=which)


def _top(loss_fn, params, **kwargs):
    """``hessian_top_eigenvalue`` under jit: one compilation instead of one per eager primitive."""
    return jax.jit(lambda p, k: hessian_top_eigenvalue(loss_fn, p, key=k, **kwargs))(params, KEY)


def _rel(value, reference):
    return abs(float(value) - reference) / abs(reference)


# ----------------------------------------------------------------------------- sharpness


def test_quadratic_top_eigenvalue_with_fewer_steps_than_parameters():
    # 60 parameters, 20 Lanczos steps: the top eigenvalue (gap 0.5 to the next) is found to 1e-3
    lam = np.concatenate([np.random.default_rng(1).uniform(0.0, 1.0, 58), [1.5, 2.0]])
    a = jnp.asarray(_rotated(lam), jnp.float32)
    for seed in range(3):  # any start vector
        assert _rel(_quadratic_top(a, jnp.ones(60), jax.random.PRNGKey(seed)), 2.0) < 1e-3
    # too few steps for a crowded top (no gap): a Rayleigh-Ritz value, below lambda_max, never above
    crowded = jnp.asarray(_rotated(np.linspace(0.0, 2.0, 60)), jnp.float32)
    ritz = float(_quadratic_top(crowded, jnp.ones(60), KEY))
    assert 1.99 < ritz <= 2.0 * (1 + 1e-6)  # 1.99976 measured


def test_history_is_the_answer_of_fewer_steps():
    # entry k - 1 of the history is what k steps from the same start vector return; the largest
    # Ritz value never decreases with more steps (Cauchy interlacing) and ends at the answer
    a = jnp.asarray(_rotated(np.linspace(0.0, 2.0, 30), seed=3), jnp.float32)
    f = jax.jit(lambda y, k: hessian_top_eigenvalue(lambda z: 0.5 * z @ a @ z, y, key=k, num_iters=12,
                                                    return_history=True))
    value, history = f(jnp.ones(30), KEY)
    assert history.shape == (12,) and float(history[-1]) == float(value)
    assert np.all(np.diff(np.asarray(history)) >= -1e-5)
    for k in (1, 7):
        assert float(history[k - 1]) == pytest.approx(float(_quadratic_top(a, jnp.ones(30), KEY, num_iters=k)),
                                                      rel=1e-5)


def test_indefinite_hessian_which_eigenvalue_comes_back():
    # spectrum -5 (largest magnitude), 58 values in [-1, 1], and 2 (largest algebraic)
    lam = np.concatenate([[-5.0], np.random.default_rng(2).uniform(-1.0, 1.0, 58), [2.0]])
    a = jnp.asarray(_rotated(lam, seed=3), jnp.float32)
    largest = _quadratic_top(a, jnp.zeros(60), KEY)  # at a saddle: x = 0
    magnitude = _quadratic_top(a, jnp.zeros(60), KEY, which="magnitude")
    assert _rel(largest, 2.0) < 1e-3
    assert _rel(magnitude, -5.0) < 1e-3
    # negative definite: the largest algebraic eigenvalue is the one nearest zero
    neg = jnp.asarray(_rotated(-np.concatenate([[1.0], np.linspace(2.0, 4.0, 59)])), jnp.float32)
    assert _rel(_quadratic_top(neg, jnp.ones(60), KEY), -1.0) < 1e-3


def test_pytree_of_two_leaves_and_eigenvector():
    a = _rotated([0.5, -1.0, 3.0, 1.0, 2.0, 0.0, 1.0, 2.5, -0.5, 1.5], seed=4)  # 6 + 4 entries
    params = {"w": jnp.ones((2, 3)), "b": jnp.arange(4.0)}

    def loss(p):  # couples both leaves: a full 10 x 10 Hessian, in the order (w, b)
        x = jnp.concatenate([p["w"].reshape(-1), p["b"]])
        return 0.5 * x @ jnp.asarray(a, jnp.float32) @ x

    value, vector = _top(loss, params, return_vector=True)
    assert _rel(value, 3.0) < 1e-5  # 10 parameters, 20 steps: the whole space
    assert jax.tree.structure(vector) == jax.tree.structure(params)
    assert vector["w"].shape == (2, 3) and vector["b"].shape == (4,)
    u = np.concatenate([np.asarray(vector["w"]).reshape(-1), np.asarray(vector["b"])]).astype(np.float64)
    assert abs(np.linalg.norm(u) - 1.0) < 1e-5
    assert np.linalg.norm(a @ u - 3.0 * u) < 1e-4  # an eigenvector of lambda = 3


def _mlp_loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return 0.5 * jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)


def test_small_mlp_against_the_dense_hessian():
    rng = RNG(5)
    params = {"w1": rng.normal(size=(3, 5)), "b1": 0.1 * rng.normal(size=5), "w2": rng.normal(size=(5, 1)),
              "b2": np.zeros(1)}  # 26 parameters
    params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
    x = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    y = jnp.sin(x[:, :1])
    flat, unravel = ravel_pytree(params)
    dense = jax.jit(jax.hessian(lambda f: _mlp_loss(unravel(f), x, y)))(flat)
    eig = np.linalg.eigvalsh(np.asarray(dense, np.float64))
    assert eig[0] < 0 < eig[-1]  # indefinite: the largest algebraic one is wanted
    top = _top(lambda p: _mlp_loss(p, x, y), params)  # 20 steps < 26 parameters
    assert _rel(top, eig[-1]) < 1e-3


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_curvature_stays_finite_and_accurate(scale):
    lam = np.concatenate([np.random.default_rng(1).uniform(0.0, 1.0, 58), [1.5, 2.0]])
    a = jnp.asarray(_rotated(lam) * scale, jnp.float32)
    top = _quadratic_top(a, jnp.ones(60) * 1e-3, KEY)
    assert np.isfinite(float(top)) and _rel(top, 2.0 * scale) < 1e-3


def test_degenerate_hessians():
    # H = 0: the Krylov space is invariant from the start, every step restarts
    assert float(_quadratic_top(jnp.zeros((60, 60)), jnp.ones(60), KEY)) == 0.0
    # two distinct eigenvalues: the Krylov space is invariant after two steps, restarts follow
    a = jnp.asarray(_rotated([1.0] * 40 + [4.0] * 20, seed=6), jnp.float32)
    assert _rel(_quadratic_top(a, jnp.ones(60), KEY), 4.0) < 1e-5
    # one parameter
    assert _rel(_top(lambda x: 2.5 * x[0] ** 2, jnp.ones(1)), 5.0) < 1e-6


def test_bfloat16_parameters():
    a = jnp.asarray(_rotated([0.5, 1.0, 3.0, -2.0, 1.5], seed=7), jnp.float32)
    top = _top(lambda x: 0.5 * x.astype(jnp.float32) @ a @ x.astype(jnp.float32), jnp.ones(5, jnp.bfloat16))
    assert top.dtype == jnp.float32 and _rel(top, 3.0) < 2e-2  # bfloat16 tangents: 8-bit mantissa


def test_large_model_never_forms_the_hessian():
    # 200k parameters: the dense Hessian would take 160 GB; Lanczos keeps 20 vectors (16 MB)
    p = 200_000
    d = jnp.asarray(np.concatenate([RNG(10).uniform(size=p - 2), [1.5, 2.0]]), jnp.float32)
    top = _top(lambda x: 0.5 * jnp.sum(d * x * x), jnp.zeros(p))
    assert _rel(top, 2.0) < 1e-3


def test_hessian_jit_matches_eager_and_errors():
    a = _rotated(np.linspace(-1.0, 2.0, 60), seed=8)
    x = jnp.ones(60)
    eager = hessian_top_eigenvalue(lambda y: 0.5 * y @ jnp.asarray(a, jnp.float32) @ y, x, key=KEY)
    np.testing.assert_allclose(_quadratic_top(jnp.asarray(a, jnp.float32), x, KEY), eager, rtol=1e-5)
    with pytest.raises(ValueError, match="scalar"):
        hessian_top_eigenvalue(lambda y: y * y, x, key=KEY)
    with pytest.raises(ValueError, match="which"):
        hessian_top_eigenvalue(lambda y: y @ y, x, key=KEY, which="smallest")
    with pytest.raises(ValueError, match="num_iters"):
        hessian_top_eigenvalue(lambda y: y @ y, x, key=KEY, num_iters=0)
    with pytest.raises(ValueError, match="no entries"):
        hessian_top_eigenvalue(lambda p: 0.0, {}, key=KEY)


# ----------------------------------------------------------------------------- linear regression


def _regression(n, p=4, sigma=1.0, seed=0):
    """Per-example gradients of 0.5 (x_i . w - y_i)^2 by hand: (x_i . w - y_i) x_i, float64,
    at w = w* + d with d = e_1, y = x . w* + noise of variance sigma^2, x ~ N(0, I_p)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    w_star = rng.normal(size=p)
    y = x @ w_star + sigma * rng.normal(size=n)
    w = w_star + np.eye(p)[0]
    return x, y, w, (x @ w - y)[:, None] * x


def test_linear_regression_by_hand():
    x, y, w, g = _regression(12)
    residual = x @ w - y
    g32 = jnp.asarray(g, jnp.float32)
    # tr F = mean_i r_i^2 |x_i|^2
    np.testing.assert_allclose(fisher_trace(g32), np.mean(residual**2 * np.sum(x**2, 1)), rtol=1e-5)
    # McCandlish et al. A.1 with B_small = 1, B_big = S, written from their two-batch formulas
    s = len(g)
    big = np.sum(g.mean(0) ** 2)  # |G_big|^2
    small = np.mean(np.sum(g**2, 1))  # mean |G_small|^2
    grad_sq = (s * big - small) / (s - 1)
    trace = (small - big) / (1.0 - 1.0 / s)
    ns = gradient_noise_scale(g32)
    np.testing.assert_allclose(ns.grad_sq_norm, grad_sq, rtol=1e-4)
    np.testing.assert_allclose(ns.trace_sigma, trace, rtol=1e-5)
    np.testing.assert_allclose(ns.simple, trace / grad_sq, rtol=1e-4)
    np.testing.assert_allclose(ns.plain, trace / big, rtol=1e-5)
    np.testing.assert_allclose(gradient_coherence(g32), big / small, rtol=1e-5)
    # the same gradients from per_sample_jacobian's (S, T = 1, P) layout, one value per task
    loss = lambda params, batch: jnp.mean(0.5 * (batch["x"] @ params - batch["y"]) ** 2)[None]
    _, jac = jax.jit(per_sample_jacobian(loss))(jnp.asarray(w, jnp.float32),
                                       {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)})
    assert jac.shape == (12, 1, 4)
    np.testing.assert_allclose(jac[:, 0], g, rtol=1e-4, atol=1e-5)
    per_task = fisher_trace(jac, task_axis=True)
    assert per_task.shape == (1,)
    np.testing.assert_allclose(per_task[0], fisher_trace(g32), rtol=1e-4)


def test_linear_regression_population_closed_forms():
    # x ~ N(0, I_P), residual x.d - eps: G = d, E|g|^2 = (P + 2)|d|^2 + P sigma^2 (Isserlis),
    # tr Sigma = (P + 1)|d|^2 + P sigma^2. P = 4, |d| = sigma = 1: tr F = 10, tr Sigma = 9, |G|^2 = 1
    _, _, _, g = _regression(160_000)
    g32 = jnp.asarray(g, jnp.float32)
    assert _rel(fisher_trace(g32), 10.0) < 0.03  # Monte Carlo standard error 0.57%
    # 20000 batches of 8: the unbiased estimates average to the population values, while the
    # plain |gbar|^2 averages to |G|^2 + tr Sigma / 8 = 2.125
    ns = jax.vmap(gradient_noise_scale)(g32.reshape(20_000, 8, 4))
    trace, grad_sq = float(jnp.mean(ns.trace_sigma)), float(jnp.mean(ns.grad_sq_norm))
    assert _rel(trace, 9.0) < 0.03  # standard error 0.55%
    assert _rel(grad_sq, 1.0) < 0.05  # standard error 1.05%
    assert _rel(trace / grad_sq, 9.0) < 0.06  # B_simple
    plain_sq = float(jnp.mean(jnp.sum(g32.reshape(20_000, 8, 4).mean(1) ** 2, 1)))
    assert _rel(plain_sq, 2.125) < 0.05 and abs(plain_sq - grad_sq) > 1.0


# ----------------------------------------------------------------------------- coherence


def test_coherence_closed_forms():
    s = 4
    g = jnp.asarray(RNG(11).normal(size=7), jnp.float32)
    assert abs(float(gradient_coherence(jnp.tile(g, (s, 1)))) - 1.0) < 1e-6  # identical
    orthogonal = 3.0 * jnp.eye(s, 9)  # equal norms, pairwise orthogonal
    assert abs(float(gradient_coherence(orthogonal)) - 1.0 / s) < 1e-6
    cancelling = jnp.concatenate([jnp.tile(g, (s, 1)), -jnp.tile(g, (s, 1))])
    assert 0.0 <= float(gradient_coherence(cancelling)) < 1e-12  # 0 up to rounding of the mean
    assert float(gradient_coherence(jnp.zeros((s, 9)))) == 0.0  # documented: zero mean gradient
    assert abs(float(gradient_coherence(g[None])) - 1.0) < 1e-6  # one example


def test_coherence_matches_numpy_on_random_pytrees():
    rng = np.random.default_rng(9)
    for s in (2, 6, 11):
        a, b = rng.normal(size=(s, 3, 2)) + 0.5, rng.normal(size=(s, 4)) - 0.3
        flat = np.concatenate([a.reshape(s, -1), b], 1)
        ref = np.sum(flat.mean(0) ** 2) / np.mean(np.sum(flat**2, 1))
        out = gradient_coherence({"a": jnp.asarray(a, jnp.float32), "b": jnp.asarray(b, jnp.float32)})
        np.testing.assert_allclose(out, ref, rtol=1e-5)


# ----------------------------------------------------------------------------- noise scale edge cases


def test_noise_scale_degenerate_input():
    with pytest.raises(ValueError, match="one example"):
        gradient_noise_scale(jnp.ones((1, 5)))
    zero = gradient_noise_scale({"a": jnp.zeros((4, 3)), "b": jnp.zeros((4,))})
    assert all(float(v) == 0.0 for v in zero)  # no noise: B = 0
    same = gradient_noise_scale(jnp.tile(jnp.asarray([1.0, -2.0, 0.5]), (6, 1)))
    assert 0.0 <= float(same.simple) < 1e-6 and 0.0 <= float(same.plain) < 1e-6
    g = jnp.asarray([1.0, 2.0, -1.0])
    opposite = gradient_noise_scale(jnp.stack([g, -g]))  # mean zero, noise 2 * 6 = 12
    assert float(opposite.simple) == np.inf and float(opposite.plain) == np.inf
    np.testing.assert_allclose(opposite.trace_sigma, 12.0, rtol=1e-6)
    np.testing.assert_allclose(opposite.grad_sq_norm, -6.0, rtol=1e-6)  # |gbar|^2 - 12 / 2


def test_per_task_axis_keeps_each_tasks_scale():
    base = jnp.asarray(RNG(12).normal(size=(6, 3, 5)) + np.asarray([0.0, 0.5, -1.0])[None, :, None], jnp.float32)
    grads = base * jnp.asarray([1e-15, 1.0, 1e15])[None, :, None]  # tasks 30 orders apart
    fisher = fisher_trace(grads, task_axis=True)
    ns = gradient_noise_scale(grads, task_axis=True)
    coherence = gradient_coherence(grads, task_axis=True)
    assert fisher.shape == ns.simple.shape == coherence.shape == (3,)
    for t in range(3):
        np.testing.assert_allclose(fisher[t], fisher_trace(grads[:, t]), rtol=1e-6)
        np.testing.assert_allclose(coherence[t], gradient_coherence(base[:, t]), rtol=1e-5)
        np.testing.assert_allclose(ns.simple[t], gradient_noise_scale(base[:, t]).simple, rtol=1e-5)
        np.testing.assert_allclose(ns.trace_sigma[t], gradient_noise_scale(grads[:, t]).trace_sigma, rtol=1e-6)
    assert 0.0 < float(fisher[0]) < 1e-27 and 1e29 < float(fisher[2]) < np.inf


def test_layout_errors():
    with pytest.raises(ValueError, match="disagree"):
        fisher_trace({"a": jnp.ones((3, 2)), "b": jnp.ones((4,))})
    with pytest.raises(ValueError, match=r"\(S, T, \*param.shape\)"):
        gradient_coherence(jnp.ones((3,)), task_axis=True)
    with pytest.raises(ValueError, match="no leaves"):
        fisher_trace({})
    with pytest.raises(ValueError, match="no example"):
        gradient_coherence(jnp.ones((0, 3)))


# ----------------------------------------------------------------------------- scales and dtypes


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_ratios_are_scale_free_in_float32_and_bfloat16(scale, dtype):
    g = jnp.asarray((RNG(13).normal(size=(8, 6)) + 0.7) * scale, jnp.float32).astype(dtype)
    exact = np.asarray(g.astype(jnp.float32), np.float64)  # the values the function receives
    mean_sq, mean_of_sq = np.sum(exact.mean(0) ** 2), np.mean(np.sum(exact**2, 1))
    trace = np.sum((exact - exact.mean(0)) ** 2) / 7
    ns = gradient_noise_scale(g)
    np.testing.assert_allclose(gradient_coherence(g), mean_sq / mean_of_sq, rtol=1e-5)
    np.testing.assert_allclose(ns.simple, trace / (mean_sq - trace / 8), rtol=1e-4)
    np.testing.assert_allclose(ns.plain, trace / mean_sq, rtol=1e-5)
    fisher = float(fisher_trace(g))
    if scale == 1.0:
        np.testing.assert_allclose(fisher, mean_of_sq, rtol=1e-5)
    elif scale == 1e30:  # 1e60 is beyond float32: the documented inf, never NaN
        assert fisher == np.inf
    else:  # 1e-60 underflows to 0, as any float32 product would
        assert 0.0 <= fisher < 1e-38


def test_nan_input_is_not_hidden():
    g = np.ones((8, 6), np.float32)
    g[3, 2] = np.nan  # a NaN gradient must not come back as a plausible 0 (the zero-gradient value)
    g = jnp.asarray(g)
    assert np.isnan(float(fisher_trace(g))) and np.isnan(float(gradient_coherence(g)))
    assert all(np.isnan(float(v)) for v in gradient_noise_scale(g))
    assert np.isnan(np.asarray(update_cosines(g[:2], g[3]))).all()


def test_fisher_near_the_float32_limit():
    # entries 5e18: each squared norm 2.5e38 fits, their sum over 4 examples does not
    g = jnp.full((4, 10), 5e18, jnp.float32)
    assert float(jnp.mean(jnp.sum(g * g, 1))) == np.inf  # the naive formula overflows
    np.testing.assert_allclose(fisher_trace(g), 2.5e38, rtol=1e-5)


# ----------------------------------------------------------------------------- update cosines


def test_update_cosines_by_hand():
    task_grads = {"a": jnp.asarray([[1.0], [0.0], [-1.0], [0.0]]), "b": jnp.asarray([[0.0], [1.0], [-1.0], [0.0]])}
    step = {"a": jnp.asarray([-1.0]), "b": jnp.asarray([-1.0])}  # the descent step of g_1 + g_2
    r = 1 / np.sqrt(2.0)
    np.testing.assert_allclose(update_cosines(task_grads, step), [r, r, -1.0, 0.0], atol=1e-6)
    direction = jax.tree.map(lambda x: -x, step)
    np.testing.assert_allclose(update_cosines(task_grads, direction, convention="gradient"),
                               [r, r, -1.0, 0.0], atol=1e-6)
    zero = jax.tree.map(jnp.zeros_like, step)
    np.testing.assert_array_equal(update_cosines(task_grads, zero), [0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="expected"):
        update_cosines(task_grads, {"a": jnp.ones(2), "b": jnp.ones(1)})
    with pytest.raises(ValueError, match="convention"):
        update_cosines(task_grads, step, convention="ascent")


@pytest.mark.parametrize("scale", [2.0**-100, 2.0**100])  # about 8e-31 and 1.3e30, exact in bfloat16
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_update_cosines_scales(scale, dtype):
    g = jnp.asarray([[3.0, 4.0, 0.0], [1.0, -1.0, 2.0]])
    u = jnp.asarray([-4.0, -3.0, 1.0])
    ref = -(np.asarray(g) @ np.asarray(u)) / (np.linalg.norm(g, axis=1) * np.linalg.norm(u))
    g_big = (g * jnp.asarray([[scale], [1.0]])).astype(dtype)  # tasks of different scales
    out = update_cosines(g_big, (u * scale).astype(dtype))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, atol=1e-6)  # these entries are exact in bfloat16


# ----------------------------------------------------------------------------- jit


def test_jit_matches_eager():
    g = {"a": jnp.asarray(RNG(14).normal(size=(5, 2, 3)) + 1.0, jnp.float32),
         "b": jnp.asarray(RNG(15).normal(size=(5, 2)) + 1.0, jnp.float32)}  # signal above noise: finite B
    pairs = ((analysis.fisher_trace, fisher_trace), (analysis.gradient_coherence, gradient_coherence),
             (analysis.gradient_noise_scale, gradient_noise_scale))
    for (eager_fn, jitted_fn), task_axis in zip(pairs, (False, True, True)):  # eager runs are slow
        eager, jitted = eager_fn(g, task_axis=task_axis), jitted_fn(g, task_axis=task_axis)
        assert jax.tree.structure(eager) == jax.tree.structure(jitted)
        for e, j in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
            assert np.all(np.isfinite(e)) and e.shape == ((2,) if task_axis else ())
            np.testing.assert_allclose(j, e, rtol=1e-5)  # XLA fuses and reorders sums
    task_grads = {"a": g["a"][0], "b": g["b"][0]}
    step = {"a": jnp.ones(3), "b": -jnp.ones(())}
    np.testing.assert_allclose(update_cosines(task_grads, step), analysis.update_cosines(task_grads, step),
                               rtol=1e-6)
