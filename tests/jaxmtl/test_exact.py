"""Checks of the float64 reference solutions in ``tests/exact.py`` (not of jaxmtl).

* published outputs on TorchJD's example ``J = [[-4, 1, 1], [6, 1, 1]]``;
* closed forms for ``T = 1`` and orthogonal gradients;
* optimality (KKT / defining equations) on random and ill-scaled Jacobians;
* agreement with an independent 60-digit ``decimal`` computation (straight from the
  Gramian definitions, on the active sets found in float64) on ill-scaled Jacobians
  whose row norms differ by up to 1e12;
* ``ValueError`` where the exact answer is undefined or not unique.
"""
from __future__ import annotations

import decimal
from decimal import Decimal

import numpy as np
import pytest

from tests import exact as E

REF_J = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])


def ill_scaled(rng, norms, P, cos=None):
    """Rows with the given norms and random directions (optionally a common cosine)."""
    T = len(norms)
    X = rng.normal(size=(T, P))
    if cos is not None:  # pull the directions together to a typical cosine
        X = X + cos * np.sqrt(P) * rng.normal(size=P)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X * np.asarray(norms, float)[:, None]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# --------------------------------------------------------------------------- published outputs
PUBLISHED = {
    "mgda": ([0.0, 1.0, 1.0], lambda J: E.mgda(J)),
    "imtl_g": ([0.0767, 1.0, 1.0], lambda J: E.imtl_g(J)),
    "aligned_mtl": ([0.2133, 0.9673, 0.9673], lambda J: E.aligned_mtl(J)),
    "cagrad": ([0.1835, 1.2041, 1.2041], lambda J: E.cagrad(J, c=0.5, rescale=0)),
    "nash_mtl": ([0.0542, 0.7061, 0.7061], lambda J: E.nash_mtl(J)),
    "con_fig": ([0.1588, 2.0706, 2.0706], lambda J: E.con_fig(J)),
    "fairgrad": ([0.0766, 0.9985, 0.9985], lambda J: E.fairgrad(J, alpha=1.0)),
    "pcgrad": ([0.5848, 3.8012, 3.8012], lambda J: E.pcgrad(J)),
    # TorchJD's published DualProj/UPGrad outputs include its ridge (G/tr(G) + 1e-4 I)
    "dualproj_ridge": ([0.5563, 1.1109, 1.1109], lambda J: E.dualproj(J, reg_eps=1e-4)),
    "upgrad_ridge": ([0.2929, 1.9004, 1.9004], lambda J: E.upgrad(J, reg_eps=1e-4)),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_torchjd_outputs(name):
    expected, f = PUBLISHED[name]
    d, w = f(REF_J)
    np.testing.assert_allclose(np.round(d, 4), expected, atol=1e-12)
    np.testing.assert_allclose(REF_J.T @ w, d, rtol=1e-13, atol=1e-14)


def test_reference_dualproj_upgrad_without_ridge():
    # exact: the mean (1,1,1) projected off g1 (g1 . mean = -2): mean + (2/18) g1
    d, w = E.dualproj(REF_J)
    np.testing.assert_allclose(d, [5 / 9, 10 / 9, 10 / 9], rtol=1e-14)
    np.testing.assert_allclose(w, [11 / 18, 0.5], rtol=1e-14)
    # UPGrad: g1/2 projected off g2 plus g2/2 projected off g1
    g1, g2 = REF_J
    p1 = g1 / 2 - (g1 @ g2 / 2) / (g2 @ g2) * g2
    p2 = g2 / 2 - (g1 @ g2 / 2) / (g1 @ g1) * g1
    np.testing.assert_allclose(E.upgrad(REF_J)[0], p1 + p2, rtol=1e-14)


# --------------------------------------------------------------------------- closed forms
def test_single_task_closed_forms():
    g = np.array([[3.0, -4.0, 12.0]])   # |g| = 13
    u = g[0] / 13
    for f in (E.mgda, E.upgrad, E.dualproj, E.imtl_g, E.con_fig, E.aligned_mtl, E.pcgrad):
        np.testing.assert_allclose(f(g)[0], g[0], rtol=1e-14, err_msg=f.__name__)
    np.testing.assert_allclose(E.cagrad(g, c=0.4)[0], g[0] * 1.4 / 1.16, rtol=1e-14)
    np.testing.assert_allclose(E.cagrad(g, c=0.4, rescale=2)[0], g[0], rtol=1e-14)
    np.testing.assert_allclose(E.nash_mtl(g)[0], u, rtol=1e-14)
    np.testing.assert_allclose(E.nash_mtl(g, max_norm=0.5)[0], u / 2, rtol=1e-14)
    for alpha in (0.5, 1.0, 2.0):
        p = 1 / alpha
        np.testing.assert_allclose(E.fairgrad(g, alpha)[0], g[0] * 13 ** (-2 / (1 + p)), rtol=1e-13)


def test_orthogonal_closed_forms():
    # exactly orthogonal in floating point (Hadamard rows: entries +-n_t/2), norms 3e-4..5e3
    n = np.array([3e-4, 2.0, 5e3])
    U = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1]]) / 2.0
    J = n[:, None] * U
    mean = J.mean(0)
    w_mgda = (1 / n**2) / np.sum(1 / n**2)
    np.testing.assert_allclose(E.mgda(J)[1], w_mgda, rtol=1e-12)
    for f in (E.upgrad, E.dualproj):
        np.testing.assert_allclose(f(J)[0], mean, rtol=1e-12)
        np.testing.assert_allclose(f(J)[1], np.full(3, 1 / 3), rtol=1e-12)
    np.testing.assert_allclose(E.imtl_g(J)[1], (1 / n) / np.sum(1 / n), rtol=1e-12)
    np.testing.assert_allclose(E.con_fig(J)[0], n.sum() / 3 * U.sum(0), rtol=1e-12)
    np.testing.assert_allclose(E.nash_mtl(J, max_norm=0)[1], 1 / n, rtol=1e-12)
    np.testing.assert_allclose(E.nash_mtl(J)[0], U.sum(0) / np.sqrt(3), rtol=1e-12)
    for alpha in (0.3, 1.0, 4.0):
        np.testing.assert_allclose(E.fairgrad(J, alpha)[1], n ** (-2 / (1 + 1 / alpha)), rtol=1e-12)
    np.testing.assert_allclose(E.aligned_mtl(J)[0], n.min() * U.mean(0), rtol=1e-12)
    np.testing.assert_allclose(E.aligned_mtl(J, "rmse")[0], np.sqrt(np.mean(n**2)) * U.mean(0), rtol=1e-12)
    np.testing.assert_allclose(E.aligned_mtl(J, "median")[0], 2.0 * U.mean(0), rtol=1e-12)
    np.testing.assert_allclose(E.pcgrad(J, [[1, 2], [0, 2], [1, 0]])[0], J.sum(0), rtol=1e-12)
    # equal norms: CAGrad's inner optimum is the mean by symmetry, d = (1 + c) g0 / (1 + c^2)
    Je = 2.5 * U
    np.testing.assert_allclose(E.cagrad(Je, c=0.7)[0], 1.7 * Je.mean(0) / 1.49, rtol=1e-12)


def test_aligned_median_even_count():
    J = np.diag([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(E.aligned_mtl(J, "median")[0], np.sqrt(6.5) / 4 * np.ones(4), rtol=1e-14)
    np.testing.assert_allclose(E.aligned_mtl(J, "median", lower_median=True)[0], 2 / 4 * np.ones(4), rtol=1e-14)


# --------------------------------------------------------------------------- optimality conditions
SCALES = [
    np.ones(4),
    np.array([6e3, 5e-2, 6.0]),
    np.array([1e-6, 1e6, 1.0, 3e2, 2e-3]),
    np.array([1e-6, 1e-2, 1e2, 1e6]),
]


def cases():
    rng = np.random.default_rng(1234)
    out = []
    for norms in SCALES:
        for P, cos in ((12, None), (8, 0.4), (len(norms) - 1, None)):   # last: T > P
            out.append(ill_scaled(rng, norms, P, cos))
    return out


CASES = cases()


def kkt_simplex(J, w, tol):
    """``w`` minimises ``|J^T w|^2`` on the simplex: ``g_t . d >= |d|^2``, equality on the support."""
    d = J.T @ w
    n = np.linalg.norm(J, axis=1)
    dd = d @ d
    dn = np.sqrt(dd)
    slack = (J @ d - dd) / (n * dn + dd + 1e-300)
    assert abs(w.sum() - 1) < 1e-13 and w.min() >= -1e-15
    assert slack.min() >= -tol
    assert np.all(np.abs(slack[w > 1e-9 * w.max()]) <= tol)


def kkt_lower(J, w, p, tol):
    """``w`` minimises ``w^T G w`` on ``w >= p``: ``J d >= 0``, ``= 0`` where ``w > p``."""
    d = J.T @ w
    n = np.linalg.norm(J, axis=1)
    scale = np.linalg.norm(J.T @ p)
    mu = w - p
    assert np.all(n * mu >= -tol * scale)
    jd = (J @ d) / np.where(n > 0, n, 1.0)
    assert jd.min() >= -tol * scale
    assert np.all(np.abs(jd[n * mu > 1e-9 * scale]) <= tol * scale)


@pytest.mark.parametrize("k", range(len(CASES)))
def test_qp_kkt(k):
    J = CASES[k]
    T = J.shape[0]
    d, w = E.mgda(J)
    np.testing.assert_allclose(J.T @ w, d, rtol=1e-12, atol=1e-12 * np.linalg.norm(J, axis=1).min())
    if np.linalg.norm(d) > 0:
        kkt_simplex(J, w, 1e-11)
    else:   # 0 in the hull: certified by the weights
        assert np.linalg.norm(J.T @ w) <= 1e-12 * np.abs(J.T).dot(w).max()
    p = np.random.default_rng(k).uniform(0.2, 1.0, size=T)
    d, w = E.dualproj(J, pref=p)
    kkt_lower(J, w, p, 1e-11)
    du = E.upgrad(J)[0]
    parts = [E.dualproj(J, pref=np.eye(T)[i] / T) for i in range(T)]
    np.testing.assert_allclose(du, sum(x[0] for x in parts), rtol=1e-12, atol=1e-14)
    assert np.all(J @ du >= -1e-11 * np.linalg.norm(J, axis=1) * np.linalg.norm(du))
    for i in range(T):
        kkt_lower(J, parts[i][1], np.eye(T)[i] / T, 1e-11)


@pytest.mark.parametrize("k", range(len(CASES)))
def test_cagrad_optimality(k):
    J = CASES[k]
    T = J.shape[0]
    c = 0.4
    d, w = E.cagrad(J, c=c, rescale=0)
    g0 = J.mean(0)
    kappa = c * np.linalg.norm(g0)
    np.testing.assert_allclose(J.T @ w, d, rtol=1e-12, atol=1e-14)
    # max-min form: d maximises min_t g_t . x over |x - g0| <= kappa (value = inner optimum)
    assert np.linalg.norm(d - g0) <= kappa * (1 + 1e-12)
    x = (w - 1 / T) / np.sum(w - 1 / T) if np.sum(w - 1 / T) > 0 else None
    if x is not None:
        gw = J.T @ x
        inner = gw @ g0 + kappa * np.linalg.norm(gw)
        np.testing.assert_allclose(np.min(J @ d), inner, rtol=1e-10, atol=1e-12 * np.linalg.norm(g0) ** 2)
        # inner optimum beats random points of the simplex
        rng = np.random.default_rng(k)
        for y in rng.dirichlet(np.ones(T) * 0.3, size=200):
            gy = J.T @ y
            assert gy @ g0 + kappa * np.linalg.norm(gy) >= inner - 1e-12 * abs(inner) - 1e-300


@pytest.mark.parametrize("k", range(len(CASES)))
def test_equation_methods(k):
    J = CASES[k]
    T, P = J.shape
    G = J @ J.T
    n = np.linalg.norm(J, axis=1)
    # Nash-MTL / FairGrad: componentwise relative residual of G w = w^(-p)
    for alpha in (None, 0.5, 1.0, 3.0):
        if alpha is None:
            d, w = E.nash_mtl(J, max_norm=0)
            p = 1.0
            np.testing.assert_allclose(np.linalg.norm(d), np.sqrt(T), rtol=1e-13)
        else:
            d, w = E.fairgrad(J, alpha)
            p = 1 / alpha
        assert w.min() > 0
        res = (G @ w - w ** (-p)) / (np.abs(G) @ w + w ** (-p))
        assert np.abs(res).max() < 1e-13, (alpha, np.abs(res).max())
    if T > P:
        for f in (E.imtl_g, E.con_fig):
            with pytest.raises(ValueError):
                f(J)
        return
    # IMTL-G: equal projections on the unit gradients, weights summing to one
    d, w = E.imtl_g(J)
    proj = (J @ d) / n
    np.testing.assert_allclose(proj, proj.mean(), rtol=1e-12)
    np.testing.assert_allclose(w.sum(), 1, rtol=1e-14)
    np.testing.assert_allclose(J.T @ w, d, rtol=1e-12)
    # ConFIG: d parallel to the least-norm x with u_t . x = 1; length sum_t g_t . e
    d, w = E.con_fig(J)
    U = J / n[:, None]
    xu = np.linalg.lstsq(U, np.ones(T), rcond=None)[0]
    e = xu / np.linalg.norm(xu)
    np.testing.assert_allclose(d, (J @ e).sum() * e, rtol=1e-10)
    np.testing.assert_allclose(J.T @ w, d, rtol=1e-12)


def test_aligned_mtl_structure():
    rng = np.random.default_rng(7)
    for norms in SCALES[1:]:
        J = ill_scaled(rng, norms, 9, cos=0.3)
        T = len(norms)
        d, w = E.aligned_mtl(J, pref=np.ones(T))
        sig = E.singular_values(J)
        # independent route to sigma_min: 1 / ||(D R^T)^{-1}||_2 with U^T = Q R
        n = np.linalg.norm(J, axis=1)
        _, R = np.linalg.qr((J / n[:, None]).T)
        inv = np.linalg.inv(R.T) / n[None, :]
        np.testing.assert_allclose(sig[-1], 1 / np.linalg.norm(inv, 2), rtol=1e-12)
        # the aligned Jacobian B J has orthogonal rows of norm s: (B J)(B J)^T = s^2 I
        V = E.jacobi_svd(J.T)[2]
        B = sig[-1] * (V / sig) @ V.T
        BJ = B @ J
        np.testing.assert_allclose(BJ @ BJ.T, sig[-1] ** 2 * np.eye(T), atol=1e-12 * sig[-1] ** 2)
        np.testing.assert_allclose(J.T @ w, d, rtol=1e-10)
        np.testing.assert_allclose(d, BJ.sum(0), rtol=1e-10)
    # rank-deficient: g3 = g1 + g2
    J = ill_scaled(rng, [6e3, 5e-2], 5)
    J = np.vstack([J, J[0] + J[1]])
    d, w = E.aligned_mtl(J)
    sig = E.singular_values(J)
    assert sig[2] < 1e-14 * sig[0]   # a numerical zero (rank 2 is taken from the unit rows)
    np.testing.assert_allclose(J.T @ w, d, rtol=1e-9)


def test_pcgrad_orders():
    J = np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])
    d1, w1 = E.pcgrad(J, [[1, 2], [0, 2], [0, 1]])
    d2, _ = E.pcgrad(J, [[0, 1, 2], [1, 0, 2], [2, 0, 1]])   # own index skipped
    np.testing.assert_allclose(d1, d2)
    np.testing.assert_allclose(J.T @ w1, d1, atol=1e-15)
    # by hand: g1 -> (1/2, 1/2) after g2, then g3: (1/2,1/2).(0,-1) < 0 -> (1/2, 0)
    #          g2 -> (0, 1) after g1; (0,1).(0,-1) < 0 -> (0, 0)
    #          g3 -> (0,-1) . g1 = 0 (no); . g2 < 0 -> (0,-1) + 1/2 (-1, 1) = (-1/2, -1/2)
    np.testing.assert_allclose(d1, [0.0, -0.5], atol=1e-15)
    with pytest.raises(ValueError):
        E.pcgrad(J)


# --------------------------------------------------------------------------- undefined inputs
def test_value_errors():
    opposite = np.array([[1.0, 2.0], [-1.0, -2.0]])
    zero_row = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    tall = np.random.default_rng(0).normal(size=(4, 3))
    dup = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    for f in (E.imtl_g, E.con_fig, E.nash_mtl, E.fairgrad):
        for J in (opposite, zero_row):
            with pytest.raises(ValueError):
                f(J)
    for f in (E.imtl_g, E.con_fig):
        for J in (tall, dup):
            with pytest.raises(ValueError):
                f(J)
    # IMTL-G: norms chosen so that sum(G^{-1} n) = sum_t (C^{-1} 1)_t / n_t = 0
    rng = np.random.default_rng(3)
    while True:
        U = rng.normal(size=(3, 4))
        U /= np.linalg.norm(U, axis=1, keepdims=True)
        y = np.linalg.solve(U @ U.T, np.ones(3))
        if y[0] + y[1] > 0 > y[2]:
            break
    with pytest.raises(ValueError):
        E.imtl_g(U * np.array([1.0, 1.0, -y[2] / (y[0] + y[1])])[:, None])
    # defined for duplicated (rank-deficient) gradients: Nash alpha = 1/(sqrt(2)|g|)
    _d, w = E.nash_mtl(dup, max_norm=0)
    np.testing.assert_allclose(w, [1 / np.sqrt(2) / np.sqrt(14), 1 / np.sqrt(2) / np.sqrt(56)], rtol=1e-14)
    for bad in (np.zeros((0, 3)), np.array([1.0, 2.0]), np.array([[np.nan, 1.0]])):
        with pytest.raises(ValueError):
            E.mgda(bad)


def test_degenerate_supported():
    zero_row = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(E.mgda(zero_row)[0], 0)
    np.testing.assert_allclose(E.upgrad(zero_row)[0], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(E.dualproj(zero_row)[1], [0.5, 0.5])
    opposite = np.array([[1.0, 2.0], [-1.0, -2.0]])
    np.testing.assert_allclose(E.mgda(opposite)[0], 0, atol=1e-16)
    np.testing.assert_allclose(E.upgrad(opposite)[0], 0, atol=1e-15)
    # CAGrad: 0 in the hull and dist(g0 = 0, cone) = 0 -> d = g0 = 0
    np.testing.assert_allclose(E.cagrad(opposite)[0], 0, atol=1e-16)
    np.testing.assert_array_equal(E.aligned_mtl(np.zeros((2, 3)))[0], 0)


def test_cagrad_zero_in_hull():
    c = 0.5
    # 0 in the hull and g0 = (0, 1/3) in the dual cone {x1 = 0, x2 >= 0}: J^T w* = 0, d = g0
    J = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(E.cagrad(J, c=c, rescale=0)[0], J.mean(0), atol=1e-16)
    # 0 in the hull but the dual cone is {0}: dist(g0, cone) = |g0| > kappa, w* = e_3
    J = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -3.0]])
    d, w = E.cagrad(J, c=c, rescale=0)
    np.testing.assert_allclose(d, [0.0, -0.5 + 0.5 * c], atol=1e-15)
    np.testing.assert_allclose(J.T @ w, d, atol=1e-15)
    # T > P, 0 not in the hull
    J = np.array([[1.0, 0.2], [0.3, 1.0], [1.0, 1.0], [2.0, -0.1]])
    d, w = E.cagrad(J, c=c, rescale=0)
    x = (w - 1 / 4) / np.sum(w - 1 / 4)
    g0 = J.mean(0)
    kappa = c * np.linalg.norm(g0)
    gw = J.T @ x
    np.testing.assert_allclose(np.min(J @ d), gw @ g0 + kappa * np.linalg.norm(gw), rtol=1e-12)


def test_ridge_options_and_dual_cone_projection():
    y, lam = E.project_dual_cone(np.array([[1.0, 0.0, 0.0]]), np.array([-2.0, 1.0, 3.0]))
    np.testing.assert_allclose(y, [0.0, 1.0, 3.0], atol=1e-15)
    np.testing.assert_allclose(lam, [2.0])
    # ridge variants = the same QPs on G / tr(G) + eps I (checked against the closed form, T = 2)
    G = REF_J @ REF_J.T
    Gr = G / np.trace(G) + 1e-6 * np.eye(2)
    a = (Gr[1, 1] - Gr[0, 1]) / (Gr[0, 0] + Gr[1, 1] - 2 * Gr[0, 1])
    np.testing.assert_allclose(E.mgda(REF_J, reg=1e-6)[1], [a, 1 - a], rtol=1e-13)


# --------------------------------------------------------------------------- 60-digit cross-check
CTX = decimal.Context(prec=60)


def dmat(A):
    return [[Decimal(float(x)) for x in row] for row in np.atleast_2d(A)]


def dsolve(A, b):
    """Gaussian elimination with partial pivoting in 60-digit decimal."""
    n = len(A)
    M = [list(A[i]) + [b[i]] for i in range(n)]
    with decimal.localcontext(CTX):
        for c in range(n):
            piv = max(range(c, n), key=lambda r: abs(M[r][c]))
            M[c], M[piv] = M[piv], M[c]
            for r in range(c + 1, n):
                f = M[r][c] / M[c][c]
                M[r] = [M[r][k] - f * M[c][k] for k in range(n + 1)]
        x = [Decimal(0)] * n
        for r in reversed(range(n)):
            x[r] = (M[r][n] - sum(M[r][k] * x[k] for k in range(r + 1, n))) / M[r][r]
    return x


class Hi:
    """The Gramian definitions evaluated in 60-digit decimal arithmetic."""

    def __init__(self, J):
        self.J = dmat(J)
        self.T, self.P = len(self.J), len(self.J[0])
        with decimal.localcontext(CTX):
            self.G = [[sum(a * b for a, b in zip(r, s)) for s in self.J] for r in self.J]
            self.n = [self.G[t][t].sqrt() for t in range(self.T)]

    def JT(self, w):
        with decimal.localcontext(CTX):
            return [sum(w[t] * self.J[t][k] for t in range(self.T)) for k in range(self.P)]

    def sub(self, S, v=None):
        return [[self.G[i][j] for j in S] for i in S]

    def mgda(self, S):
        k = len(S)
        A = [row + [Decimal(-1)] for row in self.sub(S)] + [[Decimal(1)] * k + [Decimal(0)]]
        x = dsolve(A, [Decimal(0)] * k + [Decimal(1)])[:k]
        w = [Decimal(0)] * self.T
        for i, s in enumerate(S):
            w[s] = x[i]
        return w

    def lower(self, p, F):
        """argmin w^T G w on w >= p with free set F."""
        p = [Decimal(float(x)) for x in p]
        with decimal.localcontext(CTX):
            fixed = [t for t in range(self.T) if t not in F]
            rhs = [-sum(self.G[i][j] * p[j] for j in fixed) for i in F]
            x = dsolve(self.sub(F), rhs) if F else []
        w = list(p)
        for i, s in enumerate(F):
            w[s] = x[i]
        return w

    def imtl_g(self):
        v = dsolve(self.G, self.n)
        with decimal.localcontext(CTX):
            tot = sum(v)
            return [x / tot for x in v]

    def con_fig(self):
        with decimal.localcontext(CTX):
            U = [[x / self.n[t] for x in self.J[t]] for t in range(self.T)]
            C = [[sum(a * b for a, b in zip(r, s)) for s in U] for r in U]
            y = dsolve(C, [Decimal(1)] * self.T)
            du = [sum(y[t] * U[t][k] for t in range(self.T)) for k in range(self.P)]
            nrm = sum(x * x for x in du).sqrt()
            e = [x / nrm for x in du]
            L = sum(sum(a * b for a, b in zip(g, e)) for g in self.J)
            return [L * x for x in e]

    def power_root(self, w0, p):
        """Newton on G w = w^(-p) from the float64 answer."""
        p = Decimal(float(p))
        w = [Decimal(float(x)) for x in w0]
        with decimal.localcontext(CTX):
            for _ in range(6):
                rhs = [x ** (-p) for x in w]
                F = [sum(self.G[i][j] * w[j] for j in range(self.T)) - rhs[i] for i in range(self.T)]
                H = [[self.G[i][j] + (p * rhs[i] / w[i] if i == j else 0) for j in range(self.T)]
                     for i in range(self.T)]
                step = dsolve(H, [-f for f in F])
                w = [a + b for a, b in zip(w, step)]
        return w

    def cagrad_inner(self, S, c):
        """Closed form of the inner CAGrad problem on support S (KKT with G)."""
        T = self.T
        with decimal.localcontext(CTX):
            b = [sum(self.G[i]) / T for i in range(T)]
            g0 = self.JT([Decimal(1) / T] * T)
            kappa = Decimal(float(c)) * sum(x * x for x in g0).sqrt()
            GS = self.sub(S)
            y1 = dsolve(GS, [Decimal(1)] * len(S))
            y2 = dsolve(GS, [b[s] for s in S])
            s1, s2 = sum(y1), sum(y2)
            s3 = sum(b[s] * y for s, y in zip(S, y2))
            disc = s2 * s2 - s1 * (s3 - kappa * kappa)
            lam = (s2 + disc.sqrt()) / s1
            x = [(lam * a - bb) / disc.sqrt() for a, bb in zip(y1, y2)]
            w = [Decimal(0)] * T
            for i, s in enumerate(S):
                w[s] = x[i]
            gw = self.JT(w)
            gwn = sum(v * v for v in gw).sqrt()
            return [a + kappa * v / gwn for a, v in zip(g0, gw)]

    def eigh(self):
        """Cyclic Jacobi eigenvalue algorithm on G."""
        T = self.T
        A = [row[:] for row in self.G]
        V = [[Decimal(int(i == j)) for j in range(T)] for i in range(T)]
        with decimal.localcontext(CTX):
            scale = sum(A[i][i] for i in range(T))
            for _ in range(50):
                off = sum(A[i][j] ** 2 for i in range(T) for j in range(T) if i != j)
                if off <= (scale * Decimal("1e-55")) ** 2:
                    break
                for p_ in range(T - 1):
                    for q in range(p_ + 1, T):
                        if A[p_][q] == 0:
                            continue
                        theta = (A[q][q] - A[p_][p_]) / (2 * A[p_][q])
                        t = (1 if theta >= 0 else -1) / (abs(theta) + (theta * theta + 1).sqrt())
                        cs = 1 / (t * t + 1).sqrt()
                        sn = t * cs
                        for k in range(T):   # A <- A R
                            akp, akq = A[k][p_], A[k][q]
                            A[k][p_], A[k][q] = cs * akp - sn * akq, sn * akp + cs * akq
                        for k in range(T):   # A <- R^T A
                            apk, aqk = A[p_][k], A[q][k]
                            A[p_][k], A[q][k] = cs * apk - sn * aqk, sn * apk + cs * aqk
                        for k in range(T):
                            vkp, vkq = V[k][p_], V[k][q]
                            V[k][p_], V[k][q] = cs * vkp - sn * vkq, sn * vkp + cs * vkq
        return [A[i][i] for i in range(T)], V

    def aligned(self, p):
        lam, V = self.eigh()
        T = self.T
        p = [Decimal(float(x)) for x in p]
        with decimal.localcontext(CTX):
            s = min(lam).sqrt()
            coef = [sum(V[k][j] * p[k] for k in range(T)) / lam[j].sqrt() for j in range(T)]
            w = [s * sum(V[i][j] * coef[j] for j in range(T)) for i in range(T)]
        return w

    def pcgrad(self, orders):
        with decimal.localcontext(CTX):
            d = [Decimal(0)] * self.P
            for i, order in enumerate(orders):
                gi = list(self.J[i])
                for j in order:
                    if j == i:
                        continue
                    dot = sum(a * b for a, b in zip(gi, self.J[j]))
                    if dot < 0:
                        f = dot / self.G[j][j]
                        gi = [a - f * b for a, b in zip(gi, self.J[j])]
                d = [a + b for a, b in zip(d, gi)]
        return d


def tofloat(v):
    return np.array([float(x) for x in v])


HI_CASES = [
    np.array([6e3, 5e-2, 6.0]),
    np.array([1e-6, 1e6, 1.0]),
    np.array([1e-6, 1e-2, 1e2, 1e6]),
    np.array([3e5, 1e-7, 2e-1, 4e3, 1e-2]),
]


@pytest.mark.parametrize("k", range(len(HI_CASES)))
def test_against_60_digits(k):
    """Relative error of every reference vs decimal on Jacobians with 1e12 norm ratios."""
    rng = np.random.default_rng(100 + k)
    norms = HI_CASES[k]
    T = len(norms)
    J = ill_scaled(rng, norms, T + 3, cos=0.5)
    J[1] -= 1.5 * (J[1] @ J[0]) / (J[0] @ J[0]) * J[0]   # make task 1 conflict with task 0
    hi = Hi(J)
    errs = {}
    d, w = E.mgda(J)
    errs["mgda"] = rel(d, tofloat(hi.JT(hi.mgda([t for t in range(T) if w[t] > 0]))))
    p = rng.uniform(0.5, 1.5, size=T)
    d, w = E.dualproj(J, pref=p)
    F = [t for t in range(T) if w[t] > p[t] * (1 + 1e-9)]
    errs["dualproj"] = rel(d, tofloat(hi.JT(hi.lower(p, F))))
    du = np.zeros(J.shape[1])
    for i in range(T):
        pi = np.eye(T)[i] / T
        _, wi = E.dualproj(J, pref=pi)
        F = [t for t in range(T) if wi[t] > pi[t] + 1e-300 and (t != i or wi[t] > pi[t] * (1 + 1e-9))]
        du += tofloat(hi.JT(hi.lower(pi, F)))
    errs["upgrad"] = rel(E.upgrad(J)[0], du)
    errs["imtl_g"] = rel(E.imtl_g(J)[0], tofloat(hi.JT(hi.imtl_g())))
    errs["con_fig"] = rel(E.con_fig(J)[0], tofloat(hi.con_fig()))
    _, w = E.nash_mtl(J, max_norm=0)
    errs["nash_mtl"] = rel(E.nash_mtl(J, max_norm=0)[0], tofloat(hi.JT(hi.power_root(w, 1.0))))
    for alpha in (0.5, 2.0):
        d, w = E.fairgrad(J, alpha)
        errs[f"fairgrad{alpha}"] = rel(d, tofloat(hi.JT(hi.power_root(w, 1 / alpha))))
    for c in (0.4, 0.9):
        d, w = E.cagrad(J, c=c, rescale=0)
        S = [t for t in range(T) if w[t] - 1 / T > 1e-12 * np.max(w)]
        errs[f"cagrad{c}"] = rel(d, tofloat(hi.cagrad_inner(S, c)))
    p = np.ones(T) / T
    errs["aligned_mtl"] = rel(E.aligned_mtl(J, pref=p)[0], tofloat(hi.JT(hi.aligned(p))))
    orders = [list(rng.permutation(T)) for _ in range(T)]
    errs["pcgrad"] = rel(E.pcgrad(J, orders)[0], tofloat(hi.pcgrad(orders)))
    bad = {m: e for m, e in errs.items() if not e < 1e-10}
    assert not bad, errs


def test_speed_t8_p50():
    rng = np.random.default_rng(5)
    J = ill_scaled(rng, np.logspace(-6, 6, 8), 50, cos=0.3)
    d, w = E.upgrad(J)
    assert np.all(J @ d >= -1e-11 * np.linalg.norm(J, axis=1) * np.linalg.norm(d))
    d, w = E.mgda(J)
    kkt_simplex(J, w, 1e-11)
    E.cagrad(J)
