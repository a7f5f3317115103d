"""Paper C's methods (Gama & Grassi 2025): EDM, CDTT, IMTL (hybrid), Auto-Lambda, RotoGrad.

Closed forms, float64 references written here from the papers and official code
(NumPy, explicit gradient vectors: no Gramian shortcut), the appendix property
(two tasks with equal gradient norms, and equal losses for CDTT and FAMO, get
equal weights) for every method it covers, ill-scaled gradients (norms 6e3, 5e-2
and 6), and the train steps of the methods that need more than stacked
gradients on small models written here.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.aggregators.cdtt import WINDOW, cdtt_tensions
from tests import exact
from tests.references import adam

NORMS = (6e3, 5e-2, 6.0)


def unit_rows(norms, p, seed, common=0.4):
    """Rows with the given norms and random, mostly positively correlated, directions."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(len(norms), p)) + common * np.sqrt(p) * rng.normal(size=p)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.asarray(norms, np.float64)[:, None] * u


@functools.cache
def built(name, t, **kwargs):
    """``(transformation, jitted update)`` of registry method ``name`` (compiled once per shape)."""
    tx = jaxmtl.registry.build(name, num_tasks=t, **kwargs)
    return tx, jax.jit(tx.update)


def run(method, js, losses=None, **extra):
    """Jitted updates of ``method`` (a ``built`` pair) over the Jacobians ``js``:
    (updates, weights, last state)."""
    tx, update = method
    params = jnp.zeros(np.shape(js[0])[1:], jnp.float32)
    state = tx.init(params)
    outs, ws = [], []
    for k, j in enumerate(js):
        kw = {} if losses is None else {"losses": jnp.asarray(losses[k], jnp.float32)}
        out, state = update(jnp.asarray(j, jnp.float32), state, params, **kw, **extra)
        outs.append(np.asarray(out, np.float64))
        ws.append(np.asarray(state.weights, np.float64))
    return np.array(outs), np.array(ws), state


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


# --------------------------------------------------------------------------- the appendix property
def two_equal_norms(cos, norm=2.5, p=4):
    g1 = np.zeros(p)
    g1[0] = norm
    g2 = np.zeros(p)
    g2[0], g2[1] = norm * cos, norm * np.sqrt(1 - cos**2)
    return np.stack([g1, g2])


COSINES = (-0.9, -0.3, 0.0, 0.5, 0.95)
GRAMIAN_WEIGHTINGS = {"cagrad": jaxmtl.cagrad_weights, "nash_mtl": jaxmtl.nash_mtl_weights,
                      "imtl_g": jaxmtl.imtl_g_weights, "edm": jaxmtl.edm_weights}


@pytest.mark.parametrize("name", sorted(GRAMIAN_WEIGHTINGS))
def test_equal_norms_give_equal_weights(name):
    """Gama & Grassi's appendix: two tasks with equal gradient norms are weighted equally."""
    weigh = jax.jit(GRAMIAN_WEIGHTINGS[name])
    for cos in COSINES:
        j = two_equal_norms(cos)
        w = np.asarray(weigh(jnp.asarray(j @ j.T, jnp.float32)))
        np.testing.assert_allclose(w[0], w[1], rtol=2e-3, err_msg=f"{name}, cos {cos}")


@pytest.mark.parametrize("name", ["cdtt", "famo"])
def test_equal_norms_and_losses_give_equal_weights(name):
    """The same for CDTT (tensioners active: past WINDOW updates) and FAMO (logits learned):
    equal norms and equal losses at every step, both changing over time."""
    steps = WINDOW + 5
    for cos in (-0.3, 0.5):
        js = [two_equal_norms(cos, norm=1.0 + 0.1 * k) for k in range(steps)]
        losses = [np.full(2, 2.0 / (1 + k)) for k in range(steps)]
        _, ws, _ = run(built(name, 2), js, losses)
        np.testing.assert_allclose(ws[:, 0], ws[:, 1], rtol=1e-5, err_msg=f"{name}, cos {cos}")


# --------------------------------------------------------------------------- EDM
def edm_reference(j):
    """EDM in float64: the min-norm point of the hull of the unit gradients (exact active
    sets), rescaled into a convex combination of the raw gradients."""
    n = np.linalg.norm(j, axis=1)
    _, beta = exact.mgda(j / n[:, None])
    w = (beta / n) / np.sum(beta / n)
    return w @ j, w


def test_edm_two_tasks_is_the_bisector():
    # the authors' bisection_direction: (|g2| g1 + |g1| g2) / (|g1| + |g2|)
    j = np.array([[3.0, 0.0, 4.0], [-1.0, 2.0, 0.5]])
    n1, n2 = np.linalg.norm(j, axis=1)
    d, w = run(built("edm", 2), [j])[:2]
    np.testing.assert_allclose(d[0], (n2 * j[0] + n1 * j[1]) / (n1 + n2), rtol=1e-5)
    np.testing.assert_allclose(w[0], [n2, n1] / (n1 + n2), rtol=1e-5)
    u = j / np.linalg.norm(j, axis=1, keepdims=True)
    cosines = u @ d[0] / np.linalg.norm(d[0])
    np.testing.assert_allclose(cosines[0], cosines[1], rtol=1e-5)       # the bisector


@pytest.mark.parametrize("norms", [(1.0, 2.0, 0.5, 3.0), NORMS], ids=["plain", "ill_scaled"])
def test_edm_matches_the_float64_answer(norms):
    j = unit_rows(norms, 9, seed=1)
    d_ref, w_ref = edm_reference(j)
    d, w = run(built("edm", len(norms)), [j])[:2]
    np.testing.assert_allclose(w[0], w_ref, rtol=2e-4)
    assert rel(d[0], d_ref) < 2e-4
    # equal angles with the gradients it uses (beta > 0), no increase for the others
    u = j / np.linalg.norm(j, axis=1, keepdims=True)
    cosines = u @ d[0] / np.linalg.norm(d[0])
    assert np.all(cosines >= cosines[w_ref > 0].min() - 1e-5)
    np.testing.assert_allclose(cosines[w_ref > 0], cosines[w_ref > 0].mean(), rtol=1e-4)


def test_edm_zero_gradient_gives_a_zero_update():
    j = np.zeros((3, 9))
    j[0, :2], j[2, :2] = [1.0, 2.0], [-1.0, 0.5]
    d, w = run(built("edm", 3), [j])[:2]
    np.testing.assert_array_equal(d[0], 0.0)
    np.testing.assert_array_equal(w[0], [0.0, 1.0, 0.0])


# --------------------------------------------------------------------------- CDTT
class CDTTReference:
    """The official task tensioners (Nakamura et al. 2022, ``GradHistory.descent_direction``)
    in float64 on explicit gradient vectors, with EDM's min-norm point solved exactly (the
    official code runs Frank-Wolfe); the direction check keeps the official tan formula."""

    def __init__(self, t, alpha):
        self.alpha = alpha
        self.history = np.zeros((WINDOW, t))
        self.iterations = 0
        self.previous = None
        self.corrections = 0

    def tension(self, p):
        a = self.alpha
        return max(0.0, a / (1 + np.exp(-p * np.e + np.e)) + 1 - a)

    @staticmethod
    def angle(a, b):
        return np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))

    def step(self, j, losses):
        d, _ = edm_reference(j)
        self.history[self.iterations % WINDOW] = np.linalg.norm(j, axis=1)
        self.iterations += 1
        if self.iterations >= WINDOW:
            sums = self.history.sum(axis=0)
            if self.previous is not None:
                v = d.copy()
                for g, r, loss in zip(j, sums / self.previous, losses):
                    diff = g - d
                    v += self.tension(r + np.log10(loss)) * diff / np.linalg.norm(diff)
                for g in j:
                    if self.angle(g, v) * 180 / np.pi > 90:
                        self.corrections += 1
                        u = g / np.linalg.norm(g)
                        w = v - (v @ u) * u
                        a = np.pi - self.angle(g, v - g)
                        v = np.tan(a) * np.linalg.norm(g) * w / np.linalg.norm(w)
                d = v
            self.previous = sums
        return d


@pytest.mark.parametrize("norms", [(1.0, 0.6, 1.4), NORMS], ids=["plain", "ill_scaled"])
def test_cdtt_matches_the_official_algorithm(norms):
    steps, t = WINDOW + 8, len(norms)
    rng = np.random.default_rng(3)
    base = unit_rows(np.ones(t), 7, seed=5, common=0.0)
    js, losses = [], []
    for k in range(steps):
        growth = np.exp(0.05 * k * np.array([1.0, -1.0, 0.5])[:t])   # one task's gradient shrinks
        js.append(np.asarray(norms)[:, None] * growth[:, None] * (base + 0.05 * rng.normal(size=base.shape)))
        losses.append(np.array([0.3, 4.0, 1.2])[:t] * (1 + 0.1 * rng.random(t)))
    ref = CDTTReference(t, alpha=0.7)
    expected = np.array([ref.step(j, l) for j, l in zip(js, losses)])
    assert ref.corrections > 0                       # the direction check was exercised
    got, ws, state = run(built("cdtt", t, alpha=0.7), js, losses)
    assert int(state.step) == steps
    for k in range(steps):
        assert rel(got[k], expected[k]) < 2e-5, (k, got[k], expected[k])
        np.testing.assert_allclose(ws[k] @ js[k], got[k], rtol=1e-4, atol=1e-6 * np.abs(got[k]).max())
    # before the second full window the update is EDM's
    np.testing.assert_allclose(got[WINDOW - 1], edm_reference(js[WINDOW - 1])[0], rtol=1e-4)


def test_cdtt_tensions_closed_form_and_degenerate_steps():
    tau = np.asarray(cdtt_tensions(jnp.array([1.0, 1.0, 2.0]), jnp.array([1.0, 10.0, 1.0]), alpha=0.4))
    sig = 1 / (1 + np.exp(-np.e * (np.array([1.0, 2.0, 2.0]) - 1)))
    np.testing.assert_allclose(tau, 0.4 * sig + 0.6, rtol=1e-6)
    # T = 1 (g - d = 0: no tensioner) and a zero gradient (zero update, history kept) stay finite
    js = [np.array([[1.0, -2.0, 0.5]])] * (WINDOW + 2)
    d, _, _ = run(built("cdtt", 1), js, [np.ones(1)] * len(js))
    np.testing.assert_allclose(d, np.repeat(js[0], len(js), 0), rtol=1e-5)
    js = [np.array([[1.0, -2.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0]])] * WINDOW + \
        [np.array([[1.0, -2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])]
    d, _, state = run(built("cdtt", 2), js, [np.ones(2)] * len(js))
    np.testing.assert_array_equal(d[-1], 0.0)
    assert int(state.step) == WINDOW and np.all(np.isfinite(d))
    with pytest.raises(ValueError, match="need the task losses"):
        jaxmtl.cdtt_weights(jnp.eye(2), ratios=jnp.ones(2))


# --------------------------------------------------------------------------- IMTL (hybrid)
def test_imtl_is_imtl_g_on_the_scaled_gradients():
    # several steps move s away from 0; the weights are exp(s) * IMTL-G's on exp(s) g
    t, steps = 3, 6
    j = unit_rows(NORMS, 8, seed=2)
    losses = np.array([[0.5, 3.0, 1.2]] * steps)
    _, ws, state = run(built("imtl", t, lr=0.1), [j] * steps, losses)
    s_ref = np.zeros(t)
    opt = adam(0.1)
    for k in range(steps):
        e = np.exp(s_ref)
        _, alpha = exact.imtl_g(e[:, None] * j)
        np.testing.assert_allclose(ws[k], e * alpha, rtol=3e-4, err_msg=f"step {k}")
        s_ref = s_ref + opt.update(e * losses[k] - 1.0)
    np.testing.assert_allclose(np.asarray(state.log_scale), s_ref, rtol=1e-4, atol=1e-6)
    assert np.ptp(s_ref) > 0.3
    # the direction is IMTL-G's: equal projections on the unit gradients
    d = ws[-1] @ j
    u = j / np.linalg.norm(j, axis=1, keepdims=True)
    np.testing.assert_allclose(u @ d, np.mean(u @ d), rtol=1e-3)


def tiny_mtl(seed=0, t=2, d_in=5, d_rep=4, n=16):
    """A 2-task regression model: tanh trunk, linear heads; its loss and its pieces."""
    rng = np.random.default_rng(seed)
    params = {"trunk": jnp.asarray(rng.normal(size=(d_in, d_rep)) / np.sqrt(d_in), jnp.float32),
              "heads": jnp.asarray(rng.normal(size=(t, d_rep)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(n, d_in)), jnp.float32)
    y = jnp.asarray(np.stack([x[:, 0] - x[:, 1], 3.0 * x[:, 2] + x[:, 0]], 1)[:, :t], jnp.float32)
    return params, (x, y)


def encode(params, batch):
    return jnp.tanh(batch[0] @ params["trunk"])


def head_losses(heads, z, y):
    return jnp.mean((z @ heads.T - y) ** 2, axis=0)


def mtl_losses(params, batch):
    return head_losses(params["heads"], encode(params, batch), batch[1])


def test_imtl_on_the_representation_gramian_matches_gama_grassi():
    """IMTL with gramian= of the representation (Gama & Grassi's UB variant): the encoder
    gets the gradient of sum_t alpha_t exp(s_t) L_t, alpha from IMTL-G on the representation
    gradients of the scaled losses; the heads their plain gradient (partition)."""
    params, batch = tiny_mtl(1)
    shared = {"trunk": True, "heads": False}
    tx = jaxmtl.partition(jaxmtl.imtl(lr=0.05, num_tasks=2), shared)
    state = tx.init(params)
    rep_gramian = jaxmtl.representation_gramian(lambda z, y, h: head_losses(h, z, y))
    grads_fn = jaxmtl.value_and_jacobian(mtl_losses, shared=shared)

    @jax.jit
    def step(params, state):
        losses, task_grads = grads_fn(params, batch)
        _, g_rep = rep_gramian(encode(params, batch), batch[1], params["heads"])
        updates, state = tx.update(task_grads, state, params, losses=losses, gramian=g_rep)
        return updates, state, losses

    s_ref = np.zeros(2)
    opt = adam(0.05)
    for _ in range(4):
        updates, state, losses = step(params, state)
        e = np.exp(s_ref)
        z = encode(params, batch)
        rep_grads = jax.jacrev(lambda z: head_losses(params["heads"], z, batch[1]))(z)
        _, alpha = exact.imtl_g(e[:, None] * np.asarray(rep_grads, np.float64).reshape(2, -1))
        want = jax.grad(lambda p: jnp.dot(jnp.asarray(alpha * e, jnp.float32), mtl_losses(p, batch)))(params)
        np.testing.assert_allclose(updates["trunk"], want["trunk"], rtol=2e-3, atol=1e-6)
        heads = jax.grad(lambda p: jnp.sum(mtl_losses(p, batch)))(params)["heads"]
        np.testing.assert_allclose(updates["heads"], heads, rtol=1e-5)
        s_ref = s_ref + opt.update(e * np.asarray(losses, np.float64) - 1.0)
        params = jax.tree.map(lambda p, u: p - 0.1 * u, params, updates)
    method_state = jaxmtl.find_method_state(state)
    np.testing.assert_allclose(np.asarray(method_state.log_scale), s_ref, rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------- Auto-Lambda
def test_auto_lambda_meta_gradient_is_the_look_ahead_derivative():
    params, batch = tiny_mtl(2)
    _, val = tiny_mtl(3)
    lam = jnp.array([0.3, 0.8])
    lr, wd = 0.2, 1e-2
    _, jac = jaxmtl.value_and_jacobian(mtl_losses)(params, batch)

    def val_after(lam):   # L_val(theta'(lambda)), differentiated through the virtual step
        ahead = jaxmtl.virtual_step(params, jac, lam, virtual_lr=lr, weight_decay=wd)
        return jnp.sum(mtl_losses(ahead, val))

    exact_grad = np.asarray(jax.grad(val_after)(lam))
    ahead = jaxmtl.virtual_step(params, jac, lam, virtual_lr=lr, weight_decay=wd)
    val_grad = jax.grad(lambda p: jnp.sum(mtl_losses(p, val)))(ahead)
    np.testing.assert_allclose(jaxmtl.auto_lambda_grad(jac, val_grad, virtual_lr=lr), exact_grad, rtol=1e-5)
    fd = jaxmtl.auto_lambda_fd_grad(mtl_losses, params, val_grad, batch, virtual_lr=lr)
    np.testing.assert_allclose(fd, exact_grad, rtol=2e-2)


def test_auto_lambda_update_and_train_step():
    params, batch = tiny_mtl(4)
    _, val = tiny_mtl(5)
    tx = optax.chain(jaxmtl.auto_lambda(1e-2, num_tasks=2), optax.sgd(0.1))
    state = tx.init(params)
    # without held-out gradients lambda is kept: sum_t 0.1 g_t
    losses, jac = jaxmtl.value_and_jacobian(mtl_losses)(params, batch)
    upd, kept = tx.update(jac, state, params, losses=losses)
    np.testing.assert_allclose(kept[0].weights, [0.1, 0.1])
    np.testing.assert_allclose(upd["trunk"], -0.1 * 0.1 * jac["trunk"].sum(0), rtol=1e-5)
    # the step: lambda first takes Adam's step on the meta-gradient, then weights the update
    step = jax.jit(jaxmtl.make_auto_lambda_step(mtl_losses, tx, primary=jnp.array([1.0, 0.0])))
    lam = np.full(2, 0.1)
    opt = adam(1e-2)
    for _ in range(3):
        losses, jac = jaxmtl.value_and_jacobian(mtl_losses)(params, batch)
        ahead = jaxmtl.virtual_step(params, jac, jnp.asarray(lam, jnp.float32), virtual_lr=0.1)
        val_grad = jax.grad(lambda p: mtl_losses(p, val)[0])(ahead)
        lam = lam + opt.update(np.asarray(jaxmtl.auto_lambda_grad(jac, val_grad, virtual_lr=0.1)))
        want = jax.tree.map(lambda p, g: p - 0.1 * jnp.tensordot(jnp.asarray(lam, jnp.float32), g, 1),
                            params, jac)
        params, state, _ = step(params, state, batch, val, 0.1)
        np.testing.assert_allclose(state[0].weights, lam, rtol=1e-4)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, want)
    # finite differences (the official estimate) give nearly the same weights
    fd_step = jax.jit(jaxmtl.make_auto_lambda_step(mtl_losses, tx, finite_difference=True))
    exact_step = jax.jit(jaxmtl.make_auto_lambda_step(mtl_losses, tx))
    a = fd_step(params, state, batch, val, 0.1)[1][0].weights
    b = exact_step(params, state, batch, val, 0.1)[1][0].weights
    np.testing.assert_allclose(a, b, rtol=1e-3)
    # under partition the method sees the shared leaves only: a full val_grad is refused
    part = jaxmtl.partition(jaxmtl.auto_lambda(num_tasks=2), {"trunk": True, "heads": False})
    with pytest.raises(ValueError, match="different tree structures"):
        part.update(jac, part.init(params), params, losses=losses, val_grad=jac_sum(jac))


def jac_sum(jac):
    return jax.tree.map(lambda g: g.sum(0), jac)


def test_auto_lambda_learns_which_auxiliary_task_helps():
    """Auxiliary learning: only task 0 counts on held-out data; task 1 has task 0's targets
    (it helps), task 2 the opposite ones (it conflicts through the shared model): lambda_1
    grows with lambda_0, lambda_2 never rises above its initial value."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
    batch = (x, jnp.stack([x[:, 0], x[:, 0], -x[:, 0]], 1))

    def losses_fn(params, batch):
        h = batch[0] @ params["w"]
        return jnp.mean((h[:, None] - batch[1]) ** 2, axis=0)

    params = {"w": jnp.zeros(3)}
    tx = optax.chain(jaxmtl.auto_lambda(0.01, num_tasks=3), optax.sgd(0.1))
    state = tx.init(params)
    step = jax.jit(jaxmtl.make_auto_lambda_step(losses_fn, tx, primary=jnp.array([1.0, 0.0, 0.0])))
    lams = []
    for _ in range(40):
        params, state, _ = step(params, state, batch, batch, 0.1)
        lams.append(np.asarray(state[0].weights))
    lams = np.array(lams)
    np.testing.assert_allclose(lams[:, 0], lams[:, 1], rtol=1e-5)
    assert lams[-1, 1] > 0.3 and lams[:, 2].max() <= 0.1 + 1e-6, lams[-1]


# --------------------------------------------------------------------------- RotoGrad
@pytest.mark.parametrize("parametrization", ["expm", "cayley"])
def test_rotation_matrices_are_rotations(parametrization):
    skew = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 4)), jnp.float32)
    r = np.asarray(jaxmtl.rotation_matrices(skew, parametrization), np.float64)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(4), r.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, rtol=1e-5)
    np.testing.assert_allclose(jaxmtl.rotation_matrices(jnp.zeros((2, 3, 3)), parametrization),
                               np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-7)


def test_rotograd_scaling_closed_form():
    j = unit_rows(NORMS, 6, seed=4)
    n = np.linalg.norm(j, axis=1)
    # first update: reference norms = current ones, every task rescaled to the mean norm
    d = run(built("rotograd", 3, burn_in=2), [j])[0]
    np.testing.assert_allclose(d[0], np.mean(n) * np.sum(j / n[:, None], 0), rtol=1e-4)
    # later: alpha_k proportional to n_k / n_k(0); the reference is taken again at burn_in
    scales = [np.ones(3), np.array([0.5, 2.0, 1.0]), np.array([0.25, 1.0, 4.0]), np.array([0.1, 1.0, 1.0])]
    js = [s[:, None] * j for s in scales]
    _, ws, _ = run(built("rotograd", 3, burn_in=2), js)
    for k, ref in ((1, 0), (2, 2), (3, 2)):
        nk, n0 = scales[k] * n, scales[ref] * n
        r = nk / n0
        common = np.sum(r / r.sum() * nk)
        np.testing.assert_allclose(ws[k], common / nk, rtol=1e-4, err_msg=f"step {k}")


def test_rotation_loss_aligns_the_task_gradients():
    """The heads ask for the same gradient h0 up to a fixed rotation Q_k of the features: the
    rotations learn to undo it, so the gradients passed back, g_k = R_k^T h_k, agree."""
    rng = np.random.default_rng(1)
    h0 = rng.normal(size=(8, 3)) + np.array([1.0, -0.5, 0.3])
    q = np.asarray(jaxmtl.rotation_matrices(jnp.asarray(rng.normal(size=(2, 3, 3)), jnp.float32)))
    h = jnp.asarray(np.einsum("kij,bj->kbi", q, h0), jnp.float32)
    skew = jnp.zeros((2, 3, 3))
    opt = optax.adam(0.05)
    opt_state = opt.init(skew)

    @jax.jit
    def step(skew, opt_state):
        rep_grads = jnp.einsum("kji,kbj->kbi", jaxmtl.rotation_matrices(skew), h)   # R_k^T h_k
        grads = jax.grad(lambda s: jaxmtl.rotation_loss(jaxmtl.rotation_matrices(s), rep_grads))(skew)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(skew, updates), opt_state, rep_grads

    def cosine(g):
        a, b = np.asarray(g[0]).ravel(), np.asarray(g[1]).ravel()
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    _, _, first = step(skew, opt_state)
    for _ in range(150):
        skew, opt_state, rep_grads = step(skew, opt_state)
    assert cosine(first) < 0.9 and cosine(rep_grads) > 0.999, (cosine(first), cosine(rep_grads))


def test_rotograd_train_step_and_flax_module():
    from jaxmtl.models import Rotations

    params, batch = tiny_mtl(6)
    rot = Rotations(num_tasks=2, size=4, parametrization="cayley")   # expm: see above (slower to compile)
    skew = rot.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]["skew"]
    np.testing.assert_array_equal(skew, 0.0)

    def heads_fn(params, zs, batch):
        return jnp.mean((jnp.einsum("kbd,kd->bk", zs, params["heads"]) - batch[1]) ** 2, axis=0)

    tx = optax.sgd(0.05)
    init, step = jaxmtl.make_rotograd_step(encode, heads_fn, tx, optax.sgd(0.1), num_tasks=2,
                                           parametrization="cayley")
    step = jax.jit(step)
    state = init(params, skew)
    skew = skew + 0.3 * jnp.asarray(np.random.default_rng(2).normal(size=skew.shape), jnp.float32)
    # one step by hand: rep-gradients, RotoGrad's magnitudes, one backward pass through the trunk

    @jax.jit
    def by_hand(params, skew):
        r = jaxmtl.rotation_matrices(skew, "cayley")
        z = encode(params, batch)
        rep = jax.jacrev(lambda z: heads_fn(params, jaxmtl.rotate(r, z), batch))(z)
        n = jnp.linalg.norm(rep.reshape(2, -1), axis=1)
        rep_update = jnp.mean(n) * jnp.sum(rep / n[:, None, None], 0)
        trunk = jax.vjp(lambda p: encode(p, batch), params)[1](rep_update)[0]["trunk"]
        heads = jax.grad(lambda h: jnp.sum(heads_fn({"heads": h}, jaxmtl.rotate(r, z), batch)))(params["heads"])
        rot_grad = jax.grad(lambda s: jaxmtl.rotation_loss(jaxmtl.rotation_matrices(s, "cayley"), rep))(skew)
        return trunk, heads, rot_grad, jnp.mean(n) / n, rot.apply({"params": {"skew": skew}}, z), jaxmtl.rotate(r, z)

    trunk, heads, rot_grad, weights, flax_out, rotated = by_hand(params, skew)
    np.testing.assert_allclose(flax_out, rotated, rtol=1e-6)
    new_params, new_skew, state, losses = step(params, skew, state, batch)
    np.testing.assert_allclose(new_params["trunk"], params["trunk"] - 0.05 * trunk, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_params["heads"], params["heads"] - 0.05 * heads, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new_skew, skew - 0.1 * rot_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state.method.weights, weights, rtol=1e-4)
    # training reduces both losses
    params, skew = new_params, new_skew
    first = np.asarray(losses)
    for _ in range(80):
        params, skew, state, losses = step(params, skew, state, batch)
    assert np.all(np.asarray(losses) < 0.5 * first), (first, losses)
