"""Method-specific checks: published outputs, closed forms, hand-computed steps, options."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxmtl
from tests.conftest import REFERENCE_J

G_REF = jnp.asarray(REFERENCE_J @ REFERENCE_J.T)
EQUAL_WEIGHTERS = [jax.jit(jaxmtl.cagrad_weights), jax.jit(jaxmtl.nash_mtl_weights),
                   jax.jit(jaxmtl.imtl_g_weights)]


def run(m, j, params=None, steps=1, **kw):
    j = jnp.asarray(j, jnp.float32)
    params = jnp.zeros(j.shape[1:]) if params is None else params
    state = m.init(params)
    for _ in range(steps):
        out, state = m.update(j, state, params, **kw)
    return np.asarray(out), state


# published outputs on J = [[-4, 1, 1], [6, 1, 1]] (TorchJD's documentation). DualProj's
# (0.5563, 1.1109) includes TorchJD's ridge on the trace-normalised Gramian; without a ridge the
# answer is (5/9, 10/9) = (0.5556, 1.1111), and jaxmtl's per-task ridge gives 0.5558.
@pytest.mark.parametrize("method, expected, atol", [
    (jaxmtl.imtl_g(), [0.0767, 1.0, 1.0], 1e-4),
    (jaxmtl.aligned_mtl(), [0.2133, 0.9673, 0.9673], 1e-4),
    (jaxmtl.cagrad(c=0.5, rescale=0), [0.1835, 1.2041, 1.2041], 1e-4),
    (jaxmtl.nash_mtl(), [0.0542, 0.7061, 0.7061], 1e-4),
    (jaxmtl.con_fig(), [0.1588, 2.0706, 2.0706], 1e-4),
    (jaxmtl.dualproj(), [0.5563, 1.1109, 1.1109], 6e-4),
    (jaxmtl.dualproj(reg=0.0), [5 / 9, 10 / 9, 10 / 9], 1e-5),
    (jaxmtl.fairgrad(alpha=1.0), [0.0766, 0.9985, 0.9985], 1e-4),
], ids=["imtl_g", "aligned_mtl", "cagrad", "nash_mtl", "con_fig", "dualproj", "dualproj_exact", "fairgrad"])
def test_published_outputs(method, expected, atol):
    np.testing.assert_allclose(run(method, REFERENCE_J)[0], expected, atol=atol)


@given(st.floats(0.1, 10.0), st.floats(-0.95, 0.95), st.integers(2, 6))
def test_equal_norms_give_equal_weights(norm, cos, p):
    """Gama & Grassi (2025): for two tasks with equal gradient norms CAGrad, Nash-MTL and
    IMTL-G weight both tasks equally."""
    g1 = np.zeros(p)
    g1[0] = norm
    g2 = np.zeros(p)
    g2[0], g2[1] = norm * cos, norm * np.sqrt(1 - cos**2)
    gram = jnp.asarray(np.stack([g1, g2]) @ np.stack([g1, g2]).T, jnp.float32)
    for weighting in EQUAL_WEIGHTERS:
        weights = weighting(gram)
        np.testing.assert_allclose(weights[0], weights[1], rtol=2e-3)


def test_cagrad_solves_its_inner_problem():
    # T = 2: compare with a fine grid over the simplex
    j = REFERENCE_J.astype(np.float64)
    g0 = j.mean(0)
    kappa = 0.4 * np.linalg.norm(g0)
    grid = np.linspace(0, 1, 20001)
    vals = [(np.array([a, 1 - a]) @ j) @ g0 + kappa * np.linalg.norm(np.array([a, 1 - a]) @ j) for a in grid]
    a = grid[int(np.argmin(vals))]
    gw = np.array([a, 1 - a]) @ j
    expected = (g0 + kappa / np.linalg.norm(gw) * gw) / (1 + 0.4**2)
    np.testing.assert_allclose(run(jaxmtl.cagrad(), REFERENCE_J)[0], expected, atol=1e-3)


def test_cagrad_c0_is_mean_and_bad_args_raise():
    np.testing.assert_allclose(run(jaxmtl.cagrad(c=0.0), REFERENCE_J)[0], REFERENCE_J.mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="rescale"):
        jaxmtl.cagrad(rescale=3)
    with pytest.raises(ValueError, match="c must be non-negative"):
        jaxmtl.cagrad(c=-1.0)


def test_nash_mtl_norm_clipping_and_bargaining_condition():
    out, _ = run(jaxmtl.nash_mtl(max_norm=0.0), REFERENCE_J)
    np.testing.assert_allclose(np.linalg.norm(out), np.sqrt(2), rtol=1e-4)   # |J^T a|^2 = a^T G a = T
    a = np.asarray(jaxmtl.nash_mtl_weights(G_REF, max_norm=0.0))
    np.testing.assert_allclose(np.asarray(G_REF) @ a, 1 / a, rtol=1e-4)      # G a = 1 / a
    np.testing.assert_allclose(np.linalg.norm(run(jaxmtl.nash_mtl(), REFERENCE_J)[0]), 1.0, rtol=1e-4)


def test_nash_mtl_reuses_weights_between_updates():
    m = jaxmtl.nash_mtl(update_weights_every=2, num_tasks=2)
    params = jnp.zeros(3)
    s = m.init(params)
    d1, s = m.update(jnp.asarray(REFERENCE_J), s, params)
    alpha1 = s.weights
    other = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]], np.float32)
    d2, s = m.update(jnp.asarray(other), s, params)            # step 2: alpha reused
    np.testing.assert_array_equal(s.weights, alpha1)
    np.testing.assert_allclose(d2, np.asarray(alpha1) @ other, rtol=1e-6)
    d3, s = m.update(jnp.asarray(other), s, params)            # step 3: recomputed
    assert not np.allclose(s.weights, alpha1)
    np.testing.assert_allclose(d3, run(jaxmtl.nash_mtl(), other)[0], rtol=1e-4)
    with pytest.raises(ValueError, match=r"needs num_tasks >= 1 \(update_weights_every > 1"):
        jaxmtl.nash_mtl(update_weights_every=3)


def test_nash_mtl_warm_start_reaches_the_same_root():
    m = jaxmtl.nash_mtl(warm_start=True, num_iters=3, num_tasks=2)
    params = jnp.zeros(3)
    s = m.init(params)
    for _ in range(4):                       # 3 Newton steps a call, warm-started: converges
        d, s = m.update(jnp.asarray(REFERENCE_J), s, params)
    np.testing.assert_allclose(d, run(jaxmtl.nash_mtl(), REFERENCE_J)[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"needs num_tasks >= 1 \(warm_start"):
        jaxmtl.nash_mtl(warm_start=True)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 10.0])
def test_fairgrad_optimality_condition(alpha):
    w = np.asarray(jaxmtl.fairgrad_weights(G_REF, alpha=alpha), np.float64)
    np.testing.assert_allclose(np.asarray(G_REF, np.float64) @ w, w ** (-1 / alpha), rtol=1e-3)


def test_imtl_g_equal_projections():
    j = np.array([[1.0, 0.2, 0.0], [0.1, 2.0, 0.3], [-0.5, 0.1, 3.0]], np.float32)
    d, _ = run(jaxmtl.imtl_g(), j)
    proj = (j / np.linalg.norm(j, axis=1, keepdims=True)) @ d
    np.testing.assert_allclose(proj, proj[0], rtol=1e-4)


def test_aligned_mtl_orthogonal_closed_form():
    # G = diag(a^2, b^2): B = min(a, b) diag(1/a, 1/b), w = B 1/T
    j = np.array([[3.0, 0.0], [0.0, 0.5]], np.float32)
    np.testing.assert_allclose(run(jaxmtl.aligned_mtl(), j)[0], [0.25, 0.25], rtol=1e-5)
    np.testing.assert_allclose(run(jaxmtl.aligned_mtl(pref=[1.0, 1.0]), j)[0], [0.5, 0.5], rtol=1e-5)
    with pytest.raises(ValueError, match=r"pref has shape \(3,\) but there are 2 tasks"):
        run(jaxmtl.aligned_mtl(pref=[1.0, 1.0, 1.0]), j)
    np.testing.assert_allclose(run(jaxmtl.aligned_mtl("rmse"), j)[0],
                               np.sqrt((9 + 0.25) / 2) / 2 * np.ones(2), rtol=1e-5)
    with pytest.raises(ValueError, match="scale_mode"):
        jaxmtl.aligned_mtl("max")


def test_con_fig_unit_projections_are_equal_and_positive():
    j = np.array([[1.0, 0.2, 0.0], [0.1, 2.0, 0.3], [-0.5, 0.1, 3.0]], np.float32)
    d, _ = run(jaxmtl.con_fig(), j)
    proj = (j / np.linalg.norm(j, axis=1, keepdims=True)) @ d
    np.testing.assert_allclose(proj, proj[0], rtol=1e-4)
    assert proj[0] > 0
    np.testing.assert_allclose(np.linalg.norm(d), j.sum(0) @ d / np.linalg.norm(d), rtol=1e-4)


def test_graddrop_keeps_agreeing_signs_and_leak():
    j = np.array([[1.0, -2.0, 0.5], [3.0, -1.0, 0.0]], np.float32)
    np.testing.assert_allclose(run(jaxmtl.graddrop(), j)[0], j.sum(0))
    opposite = np.array([[1.0, 2.0], [-1.0, -2.0]], np.float32)
    np.testing.assert_allclose(run(jaxmtl.graddrop(leak=1.0), opposite)[0], 0.0)
    out, _ = run(jaxmtl.graddrop(seed=1), np.array([[1.0] * 8, [-3.0] * 8], np.float32))
    assert set(np.unique(out)) <= {1.0, -3.0}       # each coordinate keeps one sign only
    with pytest.raises(ValueError, match="leak"):
        jaxmtl.graddrop(leak=1.5)


def test_gradvac_first_step_is_pcgrad_and_targets_track_cosine():
    m = jaxmtl.gradvac(beta=0.5, num_tasks=2)
    out, state = run(m, REFERENCE_J)
    np.testing.assert_allclose(out, [0.5848, 3.8012, 3.8012], atol=1e-4)
    cos = -22 / np.sqrt(18 * 38)
    np.testing.assert_allclose(state.targets, [[0, 0.5 * cos], [0.5 * cos, 0]], atol=1e-5)
    with pytest.raises(ValueError, match="needs num_tasks"):
        jaxmtl.gradvac()


def test_mgda_normalizations():
    j = np.array([[2.0, 0.0], [0.0, 0.5]], np.float32)
    out, state = run(jaxmtl.mgda("l2", num_tasks=2), j)
    np.testing.assert_allclose(state.weights, [0.5, 0.5], atol=1e-5)      # unit vectors: equal weights
    np.testing.assert_allclose(out, [1.0, 0.25], atol=1e-5)               # applied to the raw gradients
    out, state = run(jaxmtl.mgda("loss", num_tasks=2), j, losses=jnp.asarray([2.0, 0.5]))
    np.testing.assert_allclose(state.weights, [0.5, 0.5], atol=1e-5)      # g_t / L_t are unit vectors
    with pytest.raises(ValueError, match="needs the task losses"):
        run(jaxmtl.mgda("loss+"), j)
    with pytest.raises(ValueError, match="normalization"):
        jaxmtl.mgda("max")


def test_mgda_ub_with_representation_gramian():
    def heads(z, w):
        return jnp.stack([jnp.sum(z @ w[0]) ** 2, jnp.sum(z @ w[1]) ** 2])

    z = jnp.asarray([[1.0, 2.0], [0.5, -1.0]])
    w = jnp.asarray([[1.0, 0.0], [0.3, 1.0]])
    losses, g_rep = jaxmtl.representation_gramian(heads)(z, w)
    rep = jax.jacrev(heads)(z, w).reshape(2, -1)
    np.testing.assert_allclose(g_rep, rep @ rep.T, rtol=1e-5)
    m = jaxmtl.mgda(num_tasks=2)
    _, state = m.update(jnp.asarray(REFERENCE_J), m.init(None), gramian=g_rep)
    np.testing.assert_allclose(state.weights, jaxmtl.mgda_weights(g_rep), rtol=1e-5)
    with pytest.raises(ValueError, match=r"gramian has shape \(3, 3\); expected \(2, 2\)"):
        m.update(jnp.asarray(REFERENCE_J), m.init(None), gramian=jnp.eye(3))


def test_db_mtl_first_steps_by_hand():
    m = jaxmtl.db_mtl(beta=0.9, beta_sigma=0.5, num_tasks=2)
    losses = jnp.asarray([2.0, 0.5])
    out, state = run(m, REFERENCE_J, losses=losses)
    lg = REFERENCE_J / np.array([[2.0], [0.5]])
    buf = (1 - 0.9) * lg                       # step 1: lg + 0.9 (0 - lg)
    n = np.linalg.norm(buf, axis=1)
    np.testing.assert_allclose(out, (n.max() / n) @ buf, rtol=1e-4)
    out2, _ = m.update(jnp.asarray(REFERENCE_J), state, jnp.zeros(3), losses=losses)
    buf2 = lg + 0.9 / np.sqrt(2) * (buf - lg)
    n2 = np.linalg.norm(buf2, axis=1)
    np.testing.assert_allclose(out2, (n2.max() / n2) @ buf2, rtol=1e-4)


def test_moco_first_step_by_hand():
    losses = np.array([2.0, 0.5])
    out, state = run(jaxmtl.moco(num_tasks=2), REFERENCE_J, losses=jnp.asarray(losses))
    h = REFERENCE_J / (np.linalg.norm(REFERENCE_J, axis=1, keepdims=True) + 1e-8) * losses[:, None]
    y = 0.5 * h                                  # y = 0 - 0.5 (0 - h)
    z = np.full(2, 0.5) - 0.1 * (y @ y.T) @ np.full(2, 0.5)
    lam = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(state.weights, lam, rtol=1e-5)
    np.testing.assert_allclose(out, lam @ y, rtol=1e-5)
    with pytest.raises(ValueError, match="moco needs the task losses"):
        run(jaxmtl.moco(num_tasks=2), REFERENCE_J)


def test_excess_mtl_steps_by_hand():
    m = jaxmtl.excess_mtl(robust_step_size=0.5, num_tasks=2)
    j1 = REFERENCE_J
    j2 = np.array([[-2.0, 1.0, 0.0], [6.0, 2.0, 1.0]], np.float32)
    params = jnp.zeros(3)
    s = m.init(params)
    out, s = m.update(jnp.asarray(j1), s, params)
    np.testing.assert_allclose(out, j1.sum(0), rtol=1e-6)          # first step: weights 1
    h = j1**2
    r0 = np.sum(j1**2 / np.sqrt(h + 1e-7), axis=1)
    out, s = m.update(jnp.asarray(j2), s, params)
    h = h + j2**2
    r = np.sum(j2**2 / np.sqrt(h + 1e-7), axis=1)
    w = np.exp(0.5 * r / r0)
    w = w / w.sum() * 2
    np.testing.assert_allclose(s.weights, w, rtol=1e-5)
    np.testing.assert_allclose(out, w @ j2, rtol=1e-5)


def test_modo_step_by_hand_and_extra_batches_required():
    jb = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], np.float32)
    jc = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32)
    m = jaxmtl.modo(gamma=0.1, rho=0.1, num_tasks=2)
    out, state = run(m, REFERENCE_J, extra_task_grads=(jnp.asarray(jb), jnp.asarray(jc)))
    lam = np.full(2, 0.5)
    step = lam - 0.1 * ((jb @ jc.T) @ lam + 0.1 * lam)
    # projection of step onto the simplex (both coordinates stay positive here)
    lam = step - (step.sum() - 1) / 2
    np.testing.assert_allclose(state.weights, lam, rtol=1e-5)
    np.testing.assert_allclose(out, lam @ REFERENCE_J, rtol=1e-5)
    with pytest.raises(ValueError, match="extra_task_grads"):
        run(m, REFERENCE_J)
    with pytest.raises(ValueError, match=r"extra_task_grads\[1\]"):
        run(m, REFERENCE_J, extra_task_grads=(jnp.asarray(jb), jnp.ones((3, 3))))


def test_sdmgrad_weights_stay_on_simplex_and_lamda_mixes_mean():
    m = jaxmtl.sdmgrad(lamda=0.3, num_tasks=2)
    out, state = run(m, REFERENCE_J, extra_task_grads=(jnp.asarray(REFERENCE_J), jnp.asarray(REFERENCE_J)))
    w = np.asarray(state.weights)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(out, ((w + 0.3 / 2) / 1.3) @ REFERENCE_J, rtol=1e-5)


@pytest.mark.parametrize("factory", [jaxmtl.moco, jaxmtl.db_mtl, jaxmtl.excess_mtl,
                                     jaxmtl.sdmgrad, jaxmtl.modo])
def test_stateful_methods_need_num_tasks(factory):
    with pytest.raises(ValueError, match="needs num_tasks"):
        factory()


def test_buffered_methods_need_params_at_init():
    with pytest.raises(ValueError, match="call init\\(params\\)"):
        jaxmtl.moco(num_tasks=2).init(None)
