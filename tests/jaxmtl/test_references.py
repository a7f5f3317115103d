"""Checks of the NumPy references in ``tests/references.py`` against hand-derived facts.

These test the references themselves (not jaxmtl), so that step-by-step
comparisons of jaxmtl against them mean something.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests import references as ref


def _rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- helpers
def test_adam_first_steps_by_hand():
    opt = ref.adam(0.1)
    g1, g2 = np.array([2.0, -0.5]), np.array([1.0, 1.0])
    # step 1: mu_hat = g, nu_hat = g^2, so the update is -lr g / (|g| + eps)
    np.testing.assert_allclose(opt.update(g1), -0.1 * g1 / (np.abs(g1) + 1e-8), rtol=1e-12)
    mu = 0.9 * 0.1 * g1 + 0.1 * g2
    nu = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    expected = -0.1 * (mu / (1 - 0.9**2)) / (np.sqrt(nu / (1 - 0.999**2)) + 1e-8)
    np.testing.assert_allclose(opt.update(g2), expected, rtol=1e-12)
    assert opt.count == 2


def test_project_simplex():
    rng = _rng(1)
    for _ in range(50):
        v = rng.normal(size=4) * 3
        p = ref.project_simplex(v)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-12
        # optimality: <v - p, q - p> <= 0 for every vertex q of the simplex
        assert np.all((v - p) @ (np.eye(4) - p).T <= 1e-12)
    np.testing.assert_allclose(ref.project_simplex([0.2, 0.3, 0.5]), [0.2, 0.3, 0.5])


# ----------------------------------------------------------------------------- loss weightings
def test_uncertainty_first_step_and_fixed_point():
    L = np.array([0.5, 2.0, 1.0])
    w = ref.uncertainty(np.tile(L, (3000, 1)), init=0.3, lr=0.01)
    np.testing.assert_allclose(w[0], 0.5 * np.exp(-0.3))
    # Adam's first step moves s by -lr sign(1/2 - L e^{-s} / 2)
    np.testing.assert_allclose(w[1], 0.5 * np.exp(-(0.3 - 0.01 * np.sign(0.5 - L * 0.5 * np.exp(-0.3)))))
    # fixed point e^s = L, i.e. w = 1 / (2 L)
    np.testing.assert_allclose(w[-1], 1 / (2 * L), rtol=0.02)


def test_uncertainty_tracks_the_loss_ordering():
    L = np.array([0.1, 10.0])
    w = ref.uncertainty(np.tile(L, (500, 1)), lr=0.01)
    assert w[-1, 0] > 0.5 > w[-1, 1]  # the small loss gets a bigger weight


def test_imtl_l_scaled_losses_approach_one():
    L = np.array([0.2, 5.0, 1.0])
    w = ref.imtl_l(np.tile(L, (3000, 1)), lr=0.01)
    np.testing.assert_allclose(w[0], 1.0)
    np.testing.assert_allclose(w[-1] * L, 1.0, rtol=0.02)
    assert np.all(np.diff(w[:100, 0]) > 0) and np.all(np.diff(w[:100, 1]) < 0)


def test_dwa_per_step():
    rng = _rng(2)
    losses = rng.uniform(0.5, 2.0, size=(8, 3))
    w = ref.dwa(losses, temperature=2.0)
    np.testing.assert_allclose(w[:2], 1.0)
    for k in range(2, 8):
        r = losses[k - 1] / losses[k - 2]
        e = np.exp(r / 2.0)
        np.testing.assert_allclose(w[k], 3 * e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 3.0)


def test_dwa_per_epoch():
    rng = _rng(3)
    losses = rng.uniform(0.5, 2.0, size=(11, 2))  # 3 full epochs of 3 steps, then 2 steps
    w = ref.dwa(losses, temperature=0.5, steps_per_epoch=3)
    np.testing.assert_allclose(w[:6], 1.0)  # the first two epochs
    means = [losses[3 * e:3 * e + 3].mean(axis=0) for e in range(3)]
    for k in range(6, 11):
        e = k // 3
        r = means[e - 1] / means[e - 2]
        expected = 2 * np.exp(r / 0.5) / np.exp(r / 0.5).sum()
        np.testing.assert_allclose(w[k], expected, rtol=1e-12)


def _famo_logits_softmax(w, losses):
    z = w * losses  # w ∝ z / L (m = 0), so z ∝ w L
    return z / z.sum(axis=1, keepdims=True)


def test_famo_first_steps_by_hand():
    losses = np.array([[1.0, 4.0], [0.5, 3.0], [0.4, 2.9]])
    w = ref.famo(losses, gamma=0.0, lr=0.025)
    # step 0: z = 1/2, w ∝ 1 / L
    np.testing.assert_allclose(w[0], [0.8, 0.2])
    # step 1: delta = log L_0 - log L_1 = (log 2, log 4/3): task 0 fell more, so xi_0 goes
    # down by lr (Adam's first step is lr sign(g)) and xi_1 up by lr
    z1 = ref.softmax([-0.025, 0.025])
    expected = (z1 / losses[1]) / np.sum(z1 / losses[1])
    np.testing.assert_allclose(w[1], expected, rtol=1e-7)  # Adam's eps: lr g / (|g| + 1e-8)


def test_famo_lowers_the_task_whose_loss_falls_faster():
    k = np.arange(40.0)
    losses = np.stack([np.exp(-0.02 * k), 2 * np.exp(-0.01 * k)], axis=1)
    w = ref.famo(losses)
    z = _famo_logits_softmax(w, losses)
    assert z[0, 0] == pytest.approx(0.5)
    assert np.all(np.diff(z[:, 0]) < 0)  # task 0's log-loss falls 2x faster: its logit descends
    w_norm = w * losses / (w * losses).sum(axis=1, keepdims=True)  # weights of the log-losses
    assert w_norm[-1, 0] < 0.5
    # on the raw losses, task 0's weight goes down from 0.5 once the logits outweigh 1/D
    w_eq = ref.famo(np.exp(-np.outer(k, [0.02, 0.01])))
    assert w_eq[0, 0] == pytest.approx(0.5) and w_eq[-1, 0] < 0.45
    assert np.all(np.diff(w_eq[:, 0]) < 0)


def test_famo_equal_decreases_keep_equal_logits():
    # identical columns: delta is bitwise equal across tasks, so (dz/dxi)^T delta = 0 exactly.
    # (With merely equal rates, round-off in delta would be amplified to full lr-sized steps
    # by Adam's normalisation: compare implementations on clearly different rates.)
    k = np.arange(30.0)
    losses = np.stack([np.exp(-0.03 * k)] * 2, axis=1)
    w = ref.famo(losses)
    np.testing.assert_allclose(w, 0.5, atol=1e-15)


def test_famo_previous_batch_interface():
    rng = _rng(4)
    losses = rng.uniform(0.5, 2.0, size=(10, 3))
    # passing the current batch's losses as "after" is the cheap variant
    np.testing.assert_allclose(ref.famo(losses, prev_batch_losses_seq=losses), ref.famo(losses))
    # the official interface uses the re-evaluated losses of the previous batch
    after = np.empty_like(losses)
    after[1:] = losses[:-1] * np.array([0.5, 0.9, 0.99])  # previous batch, re-evaluated
    after[0] = np.nan  # row 0 is never read
    w = ref.famo(losses, gamma=0.0, prev_batch_losses_seq=after)
    delta = -np.log([0.5, 0.9, 0.99])
    g = (delta - delta.mean()) / 3  # z = 1/3
    z1 = ref.softmax(-0.025 * g / (np.abs(g) + 1e-8))
    np.testing.assert_allclose(w[1], (z1 / losses[1]) / np.sum(z1 / losses[1]), rtol=1e-12)
    assert np.all(np.isfinite(w))
    # min_losses shifts the gaps
    m = np.array([0.1, 0.2, 0.3])
    w = ref.famo(losses, min_losses=m)
    np.testing.assert_allclose(w[0], (1 / (losses[0] - m)) / np.sum(1 / (losses[0] - m)))


def test_famo_weight_decay_pulls_logits_to_zero():
    # with delta = 0 the only gradient is gamma xi: logits stay at 0
    losses = np.tile([1.0, 2.0], (20, 1))
    w = ref.famo(losses, gamma=0.1)
    np.testing.assert_allclose(w, np.tile([2 / 3, 1 / 3], (20, 1)), rtol=1e-12)


def test_gradnorm_equalises_weighted_norms_at_equal_rates():
    n = np.array([1.0, 3.0])
    K = 3000
    w = ref.gradnorm(np.tile([1.0, 2.0], (K, 1)), np.tile(n, (K, 1)), lr=0.01)
    np.testing.assert_allclose(w[0], 1.0)
    np.testing.assert_allclose(w.sum(axis=1), 2.0)
    np.testing.assert_allclose(w[-1], [1.5, 0.5], atol=0.03)  # w n equal: w ∝ 1 / n


def test_gradnorm_slower_task_gets_more_weight():
    K = 200
    k = np.arange(K)
    losses = np.stack([np.exp(-0.01 * k), np.exp(-0.001 * k)], axis=1)
    w = ref.gradnorm(losses, np.ones((K, 2)), alpha=1.5, lr=0.01)
    assert np.all(np.diff(w[1:, 1]) > 0)  # task 1 trains slower: its target and weight rise
    assert w[-1, 1] > 1.2


def test_gradnorm_first_step_by_hand():
    # rates are 1 at step 0; target = mean(w n); w = 1: sign(n - mean n)
    n = np.array([1.0, 2.0, 6.0])
    w = ref.gradnorm(np.ones((2, 3)), np.tile(n, (2, 1)), lr=0.1)
    a = np.sign(n - n.mean()) * n
    grad = a - a.sum() / 3
    np.testing.assert_allclose(w[1], 3 * ref.softmax(-0.1 * grad / (np.abs(grad) + 1e-8)), rtol=1e-12)


def test_geometric_mean_is_the_gradient_of_the_geometric_mean():
    rng = _rng(5)
    losses = rng.uniform(0.1, 3.0, size=(4, 3))
    w = ref.geometric_mean(losses)
    for L, wk in zip(losses, w):
        f = lambda x: np.prod(x) ** (1 / 3)
        num = [(f(L + h) - f(L - h)) / 2e-6 for h in np.eye(3) * 1e-6]
        np.testing.assert_allclose(wk, num, rtol=1e-6)
        assert wk @ L == pytest.approx(f(L))  # Euler: homogeneous of degree 1


def test_stch_is_the_gradient_of_the_smooth_max():
    rng = _rng(6)
    losses = rng.uniform(0.1, 3.0, size=(4, 3))
    pref, ideal = np.array([1.0, 2.0, 0.5]), np.array([0.0, 0.1, 0.05])
    for mu in (0.1, 1.0, 10.0):
        w = ref.stch(losses, mu=mu, pref=pref, ideal=ideal)
        for L, wk in zip(losses, w):
            f = lambda x: mu * np.log(np.sum(np.exp(pref * (x - ideal) / mu)))
            num = [(f(L + h) - f(L - h)) / 2e-6 for h in np.eye(3) * 1e-6]
            np.testing.assert_allclose(wk, num, rtol=1e-5, atol=1e-8)
    L = np.array([[1.0, 2.0, 1.5]])
    np.testing.assert_allclose(ref.stch(L, mu=1e-3), [[0, 1, 0]], atol=1e-12)  # Tchebycheff
    np.testing.assert_allclose(ref.stch(L, mu=1e6), 1 / 3, atol=1e-6)  # mean


def test_uw_so():
    L = np.array([[0.5, 1.0, 2.0]])
    w = ref.uw_so(L, temperature=2.0)
    e = np.exp(np.array([2.0, 1.0, 0.5]) / 2.0)
    np.testing.assert_allclose(w[0], e / e.sum())


# ----------------------------------------------------------------------------- aggregators
def test_moco_first_two_steps_by_hand():
    rng = _rng(7)
    J = rng.normal(size=(2, 3, 5))
    losses = rng.uniform(0.5, 2.0, size=(2, 3))
    upd, lam = ref.moco(J, losses, beta=0.5, gamma=0.1, rho=0.2)
    h = [J[k] / np.linalg.norm(J[k], axis=1, keepdims=True) * losses[k][:, None] for k in range(2)]
    y1 = 0.5 * h[0]
    lam1 = ref.softmax(np.full(3, 1 / 3) - 0.1 * (y1 @ y1.T + 0.2 * np.eye(3)) @ np.full(3, 1 / 3))
    np.testing.assert_allclose(lam[0], lam1, rtol=1e-7)
    np.testing.assert_allclose(upd[0], y1.T @ lam1, rtol=1e-7)
    b2, g2 = 0.5 / np.sqrt(2), 0.1 / np.sqrt(2)
    y2 = y1 - b2 * (y1 - h[1])
    lam2 = ref.softmax(lam1 - g2 * (y2 @ y2.T + 0.2 * np.eye(3)) @ lam1)
    np.testing.assert_allclose(lam[1], lam2, rtol=1e-7)
    np.testing.assert_allclose(upd[1], y2.T @ lam2, rtol=1e-7)


def test_moco_tracks_the_loss_scaled_gradients():
    # a constant Jacobian: y -> L_t g_t / |g_t| and lambda favours the smaller tracked row
    J = np.tile(np.array([[1.0, 0.0], [0.0, 2.0]]), (300, 1, 1))
    losses = np.tile([1.0, 3.0], (300, 1))
    upd, lam = ref.moco(J, losses)
    np.testing.assert_allclose(lam.sum(axis=1), 1.0)
    # y -> diag(1, 3), so d -> (lambda_0, 3 lambda_1); lambda favours the smaller tracked row
    # (softmax of a vector within [0, 1] keeps lambda close to uniform)
    np.testing.assert_allclose(upd[-1], [lam[-1, 0], 3 * lam[-1, 1]], rtol=1e-2)
    assert np.all(lam[:, 0] > lam[:, 1])


def test_db_mtl_balances_tracked_norms():
    rng = _rng(8)
    J = rng.normal(size=(6, 3, 4)) * np.array([1.0, 10.0, 0.1])[None, :, None]
    losses = rng.uniform(0.5, 2.0, size=(6, 3))
    upd, w = ref.db_mtl(J, losses)
    m = 0.1 * J[0] / (losses[0] + 1e-8)[:, None]  # (1 - beta) lg at step 1
    norms = np.linalg.norm(m, axis=1)
    np.testing.assert_allclose(w[0], norms.max() / (norms + 1e-8 * norms.max()), rtol=1e-12)
    np.testing.assert_allclose(upd[0], w[0] @ m, rtol=1e-12)
    assert np.argmin(w[0]) == np.argmax(norms) and w[0].min() == pytest.approx(1.0)
    # every weighted tracked gradient has the largest norm, at every step
    mk = np.zeros((3, 4))
    for k in range(6):
        lg = J[k] / (losses[k] + 1e-8)[:, None]
        mk = lg + 0.9 / np.sqrt(k + 1) * (mk - lg)
        np.testing.assert_allclose(np.linalg.norm(w[k][:, None] * mk, axis=1),
                                   np.linalg.norm(mk, axis=1).max(), rtol=1e-5)  # relative 1e-8 floor
    _, w0 = ref.db_mtl(np.zeros((2, 2, 3)), np.ones((2, 2)))
    np.testing.assert_allclose(w0, 1.0)


def test_excess_mtl():
    g = np.array([[1.0, -2.0, 0.5], [0.1, 0.1, 0.3]])
    J = np.tile(g, (10, 1, 1))
    upd, w = ref.excess_mtl(J)
    # constant gradients: r_k / r0 = 1/sqrt(k) (up to 1e-7) for every task, so w stays 1
    np.testing.assert_allclose(w, 1.0, atol=1e-5)
    np.testing.assert_allclose(upd[0], g.sum(axis=0))
    # a task whose gradient grows has a growing excess risk and gains weight
    J2 = J.copy()
    J2[1:, 1] *= 5.0
    _, w2 = ref.excess_mtl(J2, robust_step_size=0.1)
    np.testing.assert_allclose(w2[0], 1.0)
    H = g**2 + (g * [[1], [5]]) ** 2
    r = np.sum((g * [[1], [5]]) ** 2 / np.sqrt(H + 1e-7), axis=1)
    r0 = np.sum(g**2 / np.sqrt(g**2 + 1e-7), axis=1)
    e = np.exp(0.1 * r / r0)
    np.testing.assert_allclose(w2[1], 2 * e / e.sum(), rtol=1e-12)
    assert np.all(np.diff(w2[:, 1]) > 0)


def test_modo():
    rng = _rng(9)
    J, Jb, Jc = (rng.normal(size=(5, 3, 4)) for _ in range(3))
    upd, lam = ref.modo(J, Jb, Jc, gamma=0.0)
    np.testing.assert_allclose(lam, 1 / 3)
    np.testing.assert_allclose(upd, J.mean(axis=1), rtol=1e-12)
    # by hand: Jb Jc^T = diag(1, 4) (not symmetric in general: the order is b then c)
    Jb1 = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    Jc1 = np.array([[[1.0, 0.0], [1.0, 2.0]]])
    upd, lam = ref.modo(Jb1, Jb1, Jc1, gamma=0.1, rho=0.1)
    M = np.array([[1.0, 1.0], [0.0, 4.0]])
    expected = ref.project_simplex(np.full(2, 0.5) - 0.1 * (M @ np.full(2, 0.5) + 0.05))
    np.testing.assert_allclose(lam[0], expected)
    np.testing.assert_allclose(upd[0], Jb1[0].T @ expected)
    # simplex, and descending the double-sampled min-norm objective over steps
    J3 = np.tile(np.array([[1.0, 0.0], [0.0, 3.0]]), (400, 1, 1))
    _, lam3 = ref.modo(J3, J3, J3, gamma=0.05, rho=0.0)
    np.testing.assert_allclose(lam3[-1], [0.9, 0.1], atol=1e-3)  # min-norm: w ∝ 1 / |g|^2


def test_sdmgrad():
    rng = _rng(10)
    J, Jb = rng.normal(size=(2, 4, 3, 5))
    upd, w = ref.sdmgrad(J, Jb, Jb)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert w.min() >= 0
    np.testing.assert_allclose(upd, np.einsum("kt,ktp->kp", (w + 0.1) / 1.3, J), rtol=1e-12)
    # fixed point: min_w 1/2 w^T M w + lamda w^T M 1/T on the simplex; for M ∝ diag(1, 4)
    # the stationarity condition gives w_0 = (4 + lamda/2 * 3) / 5
    G = np.tile(np.array([[1.0, 0.0], [0.0, 2.0]]), (1, 1, 1))
    _, w = ref.sdmgrad(G, G, G, lamda=0.3, num_iters=300, lr=0.5)
    np.testing.assert_allclose(w[0], [(4 + 0.15 * 3) / 5, 1 - (4 + 0.15 * 3) / 5], atol=1e-8)
    # scale invariance of the normalisation
    _, wa = ref.sdmgrad(J, Jb, Jb * 3.0)
    _, wb = ref.sdmgrad(J, Jb * 1e-3, Jb)
    np.testing.assert_allclose(wa, ref.sdmgrad(J, Jb, Jb)[1], atol=1e-12)
    np.testing.assert_allclose(wb, ref.sdmgrad(J, Jb, Jb)[1], atol=1e-12)


def test_gradvac_first_step_is_pcgrad_and_then_hits_the_target():
    g = np.array([[1.0, 0.0], [-1.0, 1.0]])  # cos = -1/sqrt(2) < 0
    J = np.tile(g, (3, 1, 1))
    upd, w = ref.gradvac(J, beta=0.5)
    # step 1, targets 0: each g_i loses its component along g_j (PCGrad)
    p0 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
    p1 = g[1] - (g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
    np.testing.assert_allclose(upd[0], p0 + p1, atol=1e-12)
    # step 2: target = beta phi; the vaccinated g_i' has cosine exactly phi_hat with g_j
    phi = -1 / np.sqrt(2)
    target = 0.5 * phi
    c0 = np.array([1.0, w[1, 1] - 1.0]) @ g  # g_0' = g_0 + (w_1 - 1) g_1
    c1 = np.array([w[1, 0] - 1.0, 1.0]) @ g
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cos(c0, g[1]) == pytest.approx(target)
    assert cos(c1, g[0]) == pytest.approx(target)
    np.testing.assert_allclose(upd[1], c0 + c1, atol=1e-12)
    # step 3: target = 0.75 phi
    c0 = np.array([1.0, w[2, 1] - 1.0]) @ g
    assert cos(c0, g[1]) == pytest.approx(0.75 * phi)


def test_gradvac_aligned_gradients_are_untouched():
    J = np.tile(np.array([[1.0, 0.2], [0.5, 1.0]]), (4, 1, 1))
    upd, w = ref.gradvac(J, beta=0.5)
    # phi > 0 = initial target; later targets are beta-averages of phi itself, and phi >= them
    np.testing.assert_allclose(w, 1.0)
    np.testing.assert_allclose(upd, np.tile([1.5, 1.2], (4, 1)))
    with pytest.raises(ValueError):
        ref.gradvac(np.zeros((1, 3, 2)))
