"""Float64 reference solutions ("exact answers") of the Gramian-based MTL aggregators.

Independent NumPy/SciPy re-derivations of the update rules documented in jaxmtl's
aggregator docstrings, for tests that check jaxmtl's float32 answers. Nothing here
imports jax or jaxmtl. The answers are the methods' *exact* mathematical definitions,
without the ridges / trace normalisations / iteration budgets that the library adds
for conditioning, and they stay accurate (about 1e-13 to 1e-10 relative, see
``tests/jaxmtl/test_exact.py``) when the task-gradient norms differ by 1e12.

Conventions
-----------
* Input ``J``: array-like of shape ``(T, P)``, row ``t`` = task ``t``'s gradient ``g_t``;
  it is converted to float64 and must be finite. ``T`` up to about 10 (the QPs enumerate
  the ``2^T`` active sets), any ``P``.
* Every aggregator returns ``(d, w)``: the update ``d`` (shape ``(P,)``) and task weights
  ``w`` (shape ``(T,)``) with ``d = J^T w`` (up to rounding). Where the weights are not
  unique (rank-deficient ``J``, zero rows) ``w`` is *one* valid choice and only ``d`` is
  the exact answer; the functions say which.
* Inputs for which the exact answer is not defined or not unique raise ``ValueError``.
  ``RuntimeError`` means a solver failed its own optimality check (a near-degenerate
  input, or FairGrad weights outside the float64 range for a large ``alpha``).

Numerics
--------
The Gramian ``G = J J^T`` of an ill-scaled ``J`` is never formed, inverted or
eigendecomposed. Rows are split into norms ``n_t`` and unit rows ``u_t`` (``U``,
``J = D U``, ``D = diag(n)``); the cosine matrix ``C = U U^T`` is well-scaled.

* QPs (MGDA, UPGrad, DualProj, CAGrad's inner problem): change of variables
  ``v = D w`` (the quadratic form becomes ``|U^T v|^2``) and exact active-set
  enumeration. Every candidate face is solved in closed form from the QR
  factorisation of ``U_S^T`` (never from ``C^{-1}``), then the candidate with the
  smallest scaled KKT violation is returned and that violation must be below
  ``KKT_TOL``. Linear (in)dependence of a subset of unit rows is decided by
  ``RANK_TOL`` on its singular values (absolute, the rows being unit vectors).
* IMTL-G and ConFIG: QR of ``U^T``.
* Nash-MTL and FairGrad: damped Newton (exact line search) on the convex potential,
  in the variables ``beta = D w`` (Nash: ``C beta = 1/beta``; FairGrad:
  ``C beta = n^(p-1) beta^(-p)``, ``p = 1/alpha``, reached by continuation in ``p``
  from Nash), Jacobi-scaled Hessian solves; accepted only below a componentwise
  relative residual of 1e-12 (typically reached: ~1e-15).
* Aligned-MTL: the singular values and vectors of ``J`` by one-sided (Hestenes) Jacobi on
  the columns of ``J^T``, which has high relative accuracy for column-scaled matrices
  (Demmel & Veselic 1992): small singular values of an ill-scaled ``J`` keep their
  relative accuracy, unlike ``eigh(G)``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import linalg as sla

__all__ = [
    "KKT_TOL",
    "RANK_TOL",
    "aligned_mtl",
    "cagrad",
    "con_fig",
    "dualproj",
    "fairgrad",
    "imtl_g",
    "jacobi_svd",
    "mgda",
    "nash_mtl",
    "pcgrad",
    "project_dual_cone",
    "row_norms",
    "singular_values",
    "upgrad",
]

RANK_TOL = 1e-10   # singular values of a set of unit rows below this: linearly dependent
KKT_TOL = 1e-9     # largest accepted scaled KKT violation of the selected active set
_MAX_TASKS = 12    # active-set enumeration visits 2^T faces


# --------------------------------------------------------------------------- helpers
def _jacobian(J) -> np.ndarray:
    J = np.asarray(J, dtype=np.float64)
    if J.ndim != 2 or J.shape[0] < 1 or J.shape[1] < 1:
        raise ValueError(f"J must have shape (T, P) with T, P >= 1, got {J.shape}")
    if not np.all(np.isfinite(J)):
        raise ValueError("J must be finite")
    return J


def _pref(pref, T: int) -> np.ndarray:
    if pref is None:
        return np.full(T, 1.0 / T)
    p = np.asarray(pref, dtype=np.float64).reshape(-1)
    if p.shape != (T,) or not np.all(np.isfinite(p)):
        raise ValueError(f"pref must be {T} finite numbers, got {pref!r}")
    return p


def row_norms(J) -> np.ndarray:
    """Euclidean row norms, computed without overflow/underflow of the squares."""
    J = np.asarray(J, dtype=np.float64)
    m = np.max(np.abs(J), axis=1)
    safe = np.where(m > 0, m, 1.0)
    return m * np.sqrt(np.sum((J / safe[:, None]) ** 2, axis=1))


def _unit_rows(J):
    """``(n, s, U)``: row norms, the divisors used (``n``, or 1 for zero rows), unit rows."""
    n = row_norms(J)
    s = np.where(n > 0, n, 1.0)
    return n, s, J / s[:, None]


def _require_nonzero_rows(n, name):
    if np.any(n == 0):
        raise ValueError(f"{name}: undefined for a zero task gradient (row {int(np.argmax(n == 0))})")


def _require_full_row_rank(U, name):
    T, P = U.shape
    if T > P:
        raise ValueError(f"{name}: needs linearly independent gradients, but T = {T} > P = {P}")
    sv = np.linalg.svd(U, compute_uv=False)
    if sv[-1] <= RANK_TOL:
        raise ValueError(f"{name}: needs linearly independent gradients (smallest singular value "
                         f"of the unit gradients {sv[-1]:.3g} <= {RANK_TOL:g})")


class _Faces:
    """Cached factorisations of subsets ``S`` of the unit rows ``U``.

    ``get(S)`` returns ``('indep', Q, R)`` (``U_S^T = Q R``, thin QR) when the rows of
    ``U_S`` are linearly independent, ``('null', nu)`` when they have exactly one
    linear dependence ``nu^T U_S = 0`` (``|nu| = 1``), ``('deg',)`` otherwise.
    """

    def __init__(self, U: np.ndarray):
        self.U = U
        self._cache: dict = {}

    def get(self, S):
        info = self._cache.get(S)
        if info is None:
            info = self._cache[S] = self._factor(S)
        return info

    def _factor(self, S):
        US = self.U[list(S)]
        k = len(S)
        A, sv, _ = np.linalg.svd(US, full_matrices=True)
        rank = int(np.sum(sv > RANK_TOL))
        if rank == k:
            Q, R = np.linalg.qr(US.T)
            return ("indep", Q, R)
        if rank == k - 1:
            return ("null", A[:, -1])
        return ("deg",)


def _subsets(indices):
    indices = list(indices)
    for k in range(1, len(indices) + 1):
        yield from itertools.combinations(indices, k)


def _check_size(T, name):
    if T > _MAX_TASKS:
        raise ValueError(f"{name}: the exact active-set enumeration supports T <= {_MAX_TASKS}")


def _select(cands, name):
    """The candidate with the smallest KKT violation; it must be below ``KKT_TOL``."""
    if not cands:
        raise RuntimeError(f"{name}: no candidate active set")
    best = min(cands, key=lambda c: c[0])
    if not best[0] <= KKT_TOL:
        raise RuntimeError(f"{name}: best active set violates the KKT conditions by {best[0]:.3g}")
    return best


def _normalised_null_weights(nu, s_S):
    """Affine weights ``x = nu / s`` scaled to sum 1 (``None`` if they sum to ~0)."""
    x = nu / s_S
    tot = x.sum()
    if not abs(tot) > 1e-12 * np.sum(np.abs(x)):
        return None
    return x / tot


def _ridge(J, reg_eps):
    """``J_aug`` with ``J_aug J_aug^T = G / tr(G) + reg_eps I`` (TorchJD's / jaxmtl's
    conditioning), so the ridge-regularised QPs are solved exactly by the same code."""
    reg_eps = float(reg_eps)
    if not (math.isfinite(reg_eps) and reg_eps >= 0):
        raise ValueError(f"reg_eps must be >= 0, got {reg_eps}")
    if reg_eps == 0:
        return J
    fro = np.linalg.norm(row_norms(J))
    base = J / fro if fro > 0 else np.zeros_like(J)
    return np.hstack([base, math.sqrt(reg_eps) * np.eye(J.shape[0])])


# --------------------------------------------------------------------------- MGDA
def mgda(J, reg=0.0):
    """MGDA: ``d`` = the min-norm point of the convex hull of the rows.

    ``w = argmin_{w in simplex} |J^T w|^2``, ``d = J^T w``. Returns ``(d, w)``.

    Supports every ``J`` (rank-deficient, ``T > P``, zero rows): ``d`` is always unique;
    ``w`` is unique only when the active gradients are affinely independent (otherwise
    one minimiser with affinely independent support is returned). A zero row gives
    ``d = 0`` with ``w`` = that row's indicator.

    ``reg > 0`` (not the exact method): the weights minimise ``w^T (G / tr(G) + reg I) w``
    instead (jaxmtl's conditioning, ``reg = 1e-6``), solved exactly; ``d = J^T w``.
    """
    J = _jacobian(J)
    if reg:
        _, w = mgda(_ridge(J, reg))
        return J.T @ w, w
    T, P = J.shape
    _check_size(T, "mgda")
    n, _, U = _unit_rows(J)
    w = np.zeros(T)
    if np.any(n == 0):
        w[int(np.argmax(n == 0))] = 1.0
        return np.zeros(P), w
    faces = _Faces(U)
    cands = []
    for S in _subsets(range(T)):
        idx = list(S)
        info = faces.get(S)
        if info[0] == "indep":
            _, Q, R = info
            # v = D w on S: minimise |Q R v| s.t. (1/n_S)^T v = 1; eta = R v
            h = sla.solve_triangular(R, 1.0 / n[idx], trans="T")
            eta = h / (h @ h)
            v = sla.solve_triangular(R, eta)
            d = Q @ eta
            delta = np.linalg.norm(eta)
            e = d / delta
            viol_p = max(0.0, -v.min() / np.max(np.abs(v)))
            r = delta / n
            viol_d = max(0.0, float(np.max((r - U @ e) / (1.0 + r))))  # g_t.d >= |d|^2
            x = v / n[idx]
        elif info[0] == "null":
            x = _normalised_null_weights(info[1], n[idx])
            if x is None:
                continue
            d = np.zeros(P)
            viol_p = max(0.0, -x.min() / np.max(np.abs(x)))
            viol_d = 0.0
        else:
            continue
        cands.append((max(viol_p, viol_d), len(S), idx, x, d))
    _, _, idx, x, d = _select(cands, "mgda")
    w[idx] = x
    return d, w


# --------------------------------------------------------------------------- dual cone
def _cone_min(U, faces, r):
    """``argmin_{mu >= 0} |r + U^T mu|``: returns ``(d, mu)`` with ``d = r + U^T mu``.

    ``d`` is the projection of ``r`` onto the dual cone ``{x : U x >= 0}`` (Moreau).
    Exact: enumerates the linearly independent supports of ``mu``.
    """
    T, P = U.shape
    scale = np.linalg.norm(r)
    mu = np.zeros(T)
    if scale == 0:
        return np.zeros(P), mu
    cands = [(max(0.0, -float(np.min(U @ r)) / scale), 0, [], np.zeros(0), r.copy())]
    nonzero = [t for t in range(T) if np.any(U[t] != 0)]
    for F in _subsets(nonzero):
        info = faces.get(F)
        if info[0] != "indep":
            continue
        _, Q, R = info
        c1 = Q.T @ r
        d = r - Q @ c1
        c2 = Q.T @ d            # one step of re-orthogonalisation
        d = d - Q @ c2
        m = -sla.solve_triangular(R, c1 + c2)
        viol_p = max(0.0, -float(m.min()) / scale)
        viol_d = max(0.0, -float(np.min(U @ d)) / scale)
        cands.append((max(viol_p, viol_d), len(F), list(F), m, d))
    _, _, idx, m, d = _select(cands, "dual-cone projection")
    mu[idx] = m
    return d, mu


def project_dual_cone(J, x):
    """Projection of ``x`` onto the dual cone ``{y : J y >= 0}``.

    Returns ``(y, lam)`` with ``lam >= 0`` and ``y = x + J^T lam`` (``lam`` is unique
    when the active gradients are linearly independent). Any ``J``.
    """
    J = _jacobian(J)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.shape != (J.shape[1],):
        raise ValueError(f"x must have shape ({J.shape[1]},), got {x.shape}")
    _check_size(J.shape[0], "project_dual_cone")
    _, s, U = _unit_rows(J)
    y, mu = _cone_min(U, _Faces(U), x)
    return y, mu / s


def dualproj(J, pref=None, reg_eps=0.0):
    """DualProj: ``w = argmin_{w >= p} w^T G w``, ``d = J^T w``.

    Equivalently ``d`` = the projection of ``J^T p`` onto ``{x : J x >= 0}``. ``p``
    defaults to ``1/T`` each. Returns ``(d, w)``. Supports every ``J``; ``d`` is unique,
    ``w`` only when the active gradients are linearly independent (for a zero row,
    ``w_t = p_t``).

    ``reg_eps > 0`` (not the exact method) solves the QP with TorchJD's conditioned
    Gramian ``G / tr(G) + reg_eps I`` instead (exactly), as its published outputs do
    (``reg_eps = 1e-4``); ``d = J^T w`` with those weights.
    """
    J = _jacobian(J)
    T = J.shape[0]
    _check_size(T, "dualproj")
    p = _pref(pref, T)
    Jq = _ridge(J, reg_eps)
    _, s, U = _unit_rows(Jq)
    d, mu = _cone_min(U, _Faces(U), Jq.T @ p)
    w = p + mu / s
    return (d if Jq is J else J.T @ w), w


def upgrad(J, pref=None, reg_eps=0.0):
    """UPGrad: ``w_i = argmin_{w >= p_i e_i} w^T G w``, ``w = sum_i w_i``, ``d = J^T w``.

    Equivalently ``d = sum_i`` (projection of ``p_i g_i`` onto ``{x : J x >= 0}``).
    ``p`` defaults to ``1/T`` each. Returns ``(d, w)``. Supports every ``J``; ``d`` is
    unique, ``w`` only when the active gradients are linearly independent.
    ``reg_eps``: as :func:`dualproj` (TorchJD's conditioning; 0 = the exact method).
    """
    J = _jacobian(J)
    T = J.shape[0]
    _check_size(T, "upgrad")
    p = _pref(pref, T)
    Jq = _ridge(J, reg_eps)
    _, s, U = _unit_rows(Jq)
    faces = _Faces(U)
    d = np.zeros(Jq.shape[1])
    w = p.copy()
    for i in range(T):
        di, mu = _cone_min(U, faces, p[i] * Jq[i])
        d += di
        w += mu / s
    return (d if Jq is J else J.T @ w), w


# --------------------------------------------------------------------------- IMTL-G, ConFIG
def imtl_g(J):
    """IMTL-G: ``d = J^T w``, ``sum(w) = 1``, ``u_t . d`` equal for all ``t``.

    ``w = v / sum(v)``, ``v = G^{-1} n = D^{-1} C^{-1} 1``. Returns ``(d, w)``.
    Needs linearly independent gradients (``T <= P``, no zero row) and ``sum(v) != 0``
    (e.g. not for two opposite-leaning gradients whose equal-projection direction has
    zero projections); otherwise ``ValueError``.
    """
    J = _jacobian(J)
    n, _, U = _unit_rows(J)
    _require_nonzero_rows(n, "imtl_g")
    _require_full_row_rank(U, "imtl_g")
    Q, R = np.linalg.qr(U.T)
    y = sla.solve_triangular(R, np.ones(len(n)), trans="T")   # R^T y = 1
    v = sla.solve_triangular(R, y) / n                          # D^{-1} C^{-1} 1
    tot = v.sum()
    if not abs(tot) > 1e-12 * np.sum(np.abs(v)):
        raise ValueError("imtl_g: sum(G^{-1} n) = 0, the normalised weights are undefined")
    return (Q @ y) / tot, v / tot


def con_fig(J):
    """ConFIG: ``d_u = U^+ 1``, ``e = d_u / |d_u|``, ``d = (sum_t g_t . e) e``.

    Returns ``(d, w)`` with ``w = (sum_t n_t) / |d_u|^2 * D^{-1} C^{-1} 1``. Needs
    linearly independent gradients (``T <= P``, no zero row); otherwise ``ValueError``.
    Uses ``g_t . e = n_t / |d_u|`` (exact, as ``u_t . d_u = 1``).
    """
    J = _jacobian(J)
    n, _, U = _unit_rows(J)
    _require_nonzero_rows(n, "con_fig")
    _require_full_row_rank(U, "con_fig")
    Q, R = np.linalg.qr(U.T)
    y = sla.solve_triangular(R, np.ones(len(n)), trans="T")   # d_u = Q y, |d_u| = |y|
    scale = n.sum() / (y @ y)
    return scale * (Q @ y), scale * sla.solve_triangular(R, y) / n


# --------------------------------------------------------------------------- CAGrad
def cagrad(J, c=0.4, rescale=1):
    """CAGrad with ``g0 = mean(J)``, ``kappa = c |g0|``.

    ``w* = argmin_{w in simplex} (J^T w) . g0 + kappa |J^T w|``,
    ``d = (g0 + kappa / |J^T w*| J^T w*) / r`` with ``r = 1 + c^2`` (``rescale=1``),
    ``1 + c`` (``2``) or 1 (``0``); ``d = g0 / r`` when ``J^T w* = 0`` (0 in the convex
    hull and optimal) or ``kappa = 0``. Returns ``(d, w)``, ``w = (1/T + kappa/|J^T w*| w*) / r``.
    Supports every ``J``; ``d`` is unique; ``w`` only for affinely independent active
    gradients.

    The inner problem is solved exactly: on each face ``S`` the minimiser over the affine
    hull is closed-form (with ``J_S^T x = Q eta``, ``h^T eta = 1``: ``eta = q + z``,
    ``q = h / |h|^2``, ``z = -|q| c_perp / sqrt(kappa^2 - |c_perp|^2)``), then the KKT
    conditions ``g_t . u >= g_w . u`` (``u = g0 + kappa g_w / |g_w|``) select the face.
    ``d = 0`` is optimal iff 0 is in the hull and ``dist(g0, {x : J x >= 0}) <= kappa``.
    """
    J = _jacobian(J)
    T = J.shape[0]
    _check_size(T, "cagrad")
    c = float(c)
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"cagrad: c must be >= 0, got {c}")
    if rescale not in (0, 1, 2):
        raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale!r}")
    denom = {0: 1.0, 1: 1.0 + c * c, 2: 1.0 + c}[rescale]
    g0 = J.sum(axis=0) / T
    kappa = c * np.linalg.norm(g0)
    mean_w = np.full(T, 1.0 / T)
    if kappa == 0:
        return g0 / denom, mean_w / denom
    n, s, U = _unit_rows(J)
    faces = _Faces(U)
    k2 = kappa * kappa
    live = n > 0
    cands = []
    zero_opt = None   # KKT violation of d = 0, computed once if needed
    for S in _subsets(range(T)):
        idx = list(S)
        info = faces.get(S)
        if info[0] == "indep":
            _, Q, R = info
            h = sla.solve_triangular(R, 1.0 / n[idx], trans="T")
            hn = np.linalg.norm(h)
            hh = h / hn
            gam = Q.T @ g0
            cp = gam - (gam @ hh) * hh
            cp2 = cp @ cp
            if not cp2 < k2:
                continue          # unbounded below on this face's affine hull
            eta = hh / hn - cp / (hn * math.sqrt(k2 - cp2))
            v = sla.solve_triangular(R, eta)
            gw = Q @ eta
            gwn = np.linalg.norm(eta)
            u = g0 + (kappa / gwn) * gw
            lam = gw @ g0 + kappa * gwn            # = g_s . u on S
            un = np.linalg.norm(u)
            lam_s = lam / s
            viol_d = float(np.max((lam_s - U @ u) / np.maximum(live * un + abs(lam_s), 1e-300)))
            viol_p = -float(v.min()) / float(np.max(np.abs(v)))
            cands.append((max(0.0, viol_p, viol_d), len(S), idx, v / n[idx], gw, gwn))
        elif info[0] == "null":
            x = _normalised_null_weights(info[1], s[idx])
            if x is None:
                continue
            viol_p = max(0.0, -x.min() / np.max(np.abs(x)))
            if zero_opt is None:
                dproj, _ = _cone_min(U, faces, g0)
                zero_opt = max(0.0, (np.linalg.norm(dproj - g0) - kappa) / kappa)
            cands.append((max(viol_p, zero_opt), len(S), idx, x, None, 0.0))
    _, _, idx, x, gw, gwn = _select(cands, "cagrad")
    if gw is None:
        return g0 / denom, mean_w / denom
    w = mean_w.copy()
    w[idx] += (kappa / gwn) * x
    return (g0 + (kappa / gwn) * gw) / denom, w / denom


# --------------------------------------------------------------------------- Nash-MTL, FairGrad
def _newton(x, grad, hess, step_max, rel_res, rel_step, name, check=True, max_iter=300):
    """Minimise a smooth strictly convex function by damped Newton.

    ``grad``/``hess`` of the function; ``step_max(x, dx)``: largest ``t`` keeping
    ``x + t dx`` strictly inside the domain (with a margin); ``rel_res``: a scale-free
    residual of the optimality condition (not finite outside the domain); ``rel_step``:
    relative size of a step. Away from the solution (``rel_res > 1e-3``) the step length
    is an exact line search (root of the directional derivative, by regula falsi);
    close to it, full steps. Points where rounding leaves the domain are backed off.
    Hessian solves are Jacobi-scaled. Returns the iterate with the smallest residual,
    which must be below 1e-12 (if ``check``).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        return _newton_loop(x, grad, hess, step_max, rel_res, rel_step, name, check, max_iter)


def _newton_loop(x, grad, hess, step_max, rel_res, rel_step, name, check, max_iter):
    def dphi(t):
        f = float(dx @ grad(x + t * dx))
        return f if math.isfinite(f) else math.inf

    best = (rel_res(x), x)
    if not math.isfinite(best[0]):
        best = (math.inf, x)
    for _ in range(max_iter):
        g = grad(x)
        H = hess(x)
        if not np.all(np.isfinite(g)):
            break
        # a barrier curvature that overflows (a weight near the bottom of the float64
        # range): that coordinate just does not move
        H = np.where(np.isfinite(H), H, 1e300)
        sc = 1.0 / np.sqrt(np.diag(H))
        dx = -sc * sla.solve(H * sc[:, None] * sc[None, :], sc * g, assume_a="pos")
        hi = min(1.0, step_max(x, dx))
        r_now = rel_res(x)
        if not r_now <= 1e-3:
            f_hi = dphi(hi)
            if f_hi > 0:
                lo_t, f_lo, hi_t = 0.0, float(dx @ g), hi
                for _ in range(100):
                    t = hi_t - f_hi * (hi_t - lo_t) / (f_hi - f_lo) if math.isfinite(f_hi) else math.nan
                    if not lo_t < t < hi_t:
                        t = 0.5 * (lo_t + hi_t)
                    f = dphi(t)
                    if f > 0:
                        hi_t, f_hi = t, f
                    else:
                        lo_t, f_lo = t, f
                    if hi_t - lo_t < 1e-3 * hi_t:
                        break
                hi = lo_t if lo_t > 0 else 0.5 * hi_t
        new = x + hi * dx
        r_new = rel_res(new)
        for _ in range(60):          # rounding left the domain: back off
            if math.isfinite(r_new):
                break
            hi *= 0.5
            new = x + hi * dx
            r_new = rel_res(new)
        else:
            break
        if r_new < best[0]:
            best = (r_new, new)
        done = rel_step(x, hi * dx) < 1e-15 or r_new < 1e-15
        x = new
        if done:
            break
    res, x = best
    if check and not res < 1e-12:
        raise RuntimeError(f"{name}: Newton did not converge (relative residual {res:.3g}; "
                           "weights outside the float64 range for extreme alpha?)")
    return x


def _power_root(U, n, p, name):
    """``beta > 0`` with ``C beta = n^(p-1) beta^(-p)`` (``C = U U^T``, ``p > 0``).

    I.e. ``w = beta / n`` solves ``G w = w^(-p)``; ``beta`` is the unique minimiser of the
    strictly convex ``1/2 b^T C b + sum_t c_t phi_p(b_t)`` over ``b > 0`` (``c = n^(p-1)``,
    ``phi_p' = -b^(-p)``; self-concordant for ``p = 1``), which exists when every task
    can be improved (checked by the callers). ``p = 1`` (Nash-MTL) is solved from the
    orthogonal-gradient solution ``beta = 1`` moved to the best point of its ray. Other
    ``p``: continuation from ``p = 1`` along ``p_k`` (steps of a factor <= 1.25), each
    stage warm-started with the orthogonal-gradient rescaling
    ``beta *= n^(gamma_new - gamma_old)``, ``gamma = (p - 1) / (p + 1)`` (a stiff barrier,
    ``p`` far from 1, is only fast from a close start).
    """
    C = U @ U.T
    absC = np.abs(C)
    stage = {"p": 1.0, "c": np.ones(len(n))}

    def rel_res(b):
        if not np.all(b > 0):
            return math.inf
        rhs = stage["c"] * b ** (-stage["p"])
        r = float(np.max(np.abs(C @ b - rhs) / (absC @ b + rhs)))
        return r if math.isfinite(r) else math.inf

    def grad(b):
        return C @ b - stage["c"] * b ** (-stage["p"])

    def hess(b):
        return C + np.diag(stage["p"] * stage["c"] * b ** (-stage["p"] - 1.0))

    def step_max(b, db):
        neg = db < 0
        return 0.99 * float(np.min(-b[neg] / db[neg])) if np.any(neg) else np.inf

    def rel_step(b, db):
        return float(np.max(np.abs(db) / b))

    beta = np.ones(len(n))
    beta = beta * math.sqrt(len(n) / (beta @ C @ beta))
    beta = _newton(beta, grad, hess, step_max, rel_res, rel_step, name, check=p == 1.0)
    # adaptive continuation in log p: a stage that does not converge quickly is halved
    log_step = math.copysign(math.log(1.25), math.log(p)) if p != 1.0 else 0.0
    while stage["p"] != p:
        if abs(log_step) < 1e-3:
            raise RuntimeError(f"{name}: continuation in p stalled at p = {stage['p']:.6g} "
                               "(weights outside the float64 range for an extreme alpha?)")
        pk = stage["p"] * math.exp(log_step)
        if (pk - p) * log_step >= 0:
            pk = p
        prev = (stage["p"], stage["c"], beta)
        g_old, g_new = (stage["p"] - 1) / (stage["p"] + 1), (pk - 1) / (pk + 1)
        stage["p"], stage["c"] = pk, n ** (pk - 1.0)
        trial = _newton(beta * n ** (g_new - g_old), grad, hess, step_max, rel_res, rel_step,
                        name, check=False, max_iter=60)
        if rel_res(trial) < 1e-12:
            beta = trial
            log_step *= 1.5
        else:
            stage["p"], stage["c"], beta = prev
            log_step *= 0.5
    return beta


def _require_improving_direction(U, name):
    """Raise unless some ``x`` has ``u_t . x > 0`` for all ``t`` (Gordan)."""
    m, _ = mgda(U)
    if not np.linalg.norm(m) > 1e-12:
        raise ValueError(f"{name}: undefined, 0 is in the convex hull of the unit gradients "
                         "(no direction improves every task), so no positive solution exists")


def nash_mtl(J, max_norm=1.0):
    """Nash-MTL: ``alpha > 0`` with ``G alpha = 1 / alpha``, ``d = J^T alpha``, then clipped.

    If ``max_norm > 0`` and ``|d| > max_norm``, ``d`` and the weights are multiplied by
    ``max_norm / |d|`` (unclipped, ``|d| = sqrt(T)``). Returns ``(d, w)``, ``w = alpha``
    times that factor. Solved as ``alpha = beta / n``, ``C beta = 1 / beta``.

    Supports every ``J`` without zero rows for which a direction improving every task
    exists (then ``alpha`` is unique, also for rank-deficient ``J`` or ``T > P``, e.g.
    duplicated gradients); otherwise (zero row, 0 in the convex hull of the unit
    gradients, e.g. opposite gradients) ``ValueError``.
    """
    J = _jacobian(J)
    n, _, U = _unit_rows(J)
    _require_nonzero_rows(n, "nash_mtl")
    _require_improving_direction(U, "nash_mtl")
    beta = _power_root(U, n, 1.0, "nash_mtl")
    d = U.T @ beta
    w = beta / n
    dn = np.linalg.norm(d)
    if max_norm > 0 and dn > max_norm:
        d, w = d * (max_norm / dn), w * (max_norm / dn)
    return d, w


def fairgrad(J, alpha=1.0):
    """FairGrad: ``w > 0`` with ``(G w)_t = w_t^(-1/alpha)``, ``d = J^T w``.

    Returns ``(d, w)``. With ``p = 1 / alpha`` and ``beta = D w`` the equation is
    ``C beta = n^(p-1) beta^(-p)`` (well scaled for ``alpha = 1``; the brief's
    ``w = n^(-2/(1+p)) z`` is the warm start between continuation stages, see
    ``_power_root``). ``alpha > 0``; converged on all of 300 random ill-scaled Jacobians
    (norms 1e-6..1e6, near-colinear ones included) for ``alpha`` in [0.05, 20]. The
    weights scale like ``(utility)^(-alpha)``: for large ``alpha`` with spread norms
    they leave the float64 range (below 1e-308 at ``alpha = 40`` there), which raises
    ``RuntimeError``.
    Same support as :func:`nash_mtl` (``ValueError`` for a zero row or when no
    direction improves every task). For ``alpha < 1`` the answer can be ill-conditioned:
    tasks whose utility ``u_t . d`` is tiny relative to ``|d|`` (then ``w_t`` depends on
    that utility's rounding); the residual is small (backward stable) but ``d`` may be
    less accurate than 1e-10 there.
    """
    J = _jacobian(J)
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"fairgrad: alpha must be > 0, got {alpha}")
    p = 1.0 / alpha
    n, _, U = _unit_rows(J)
    _require_nonzero_rows(n, "fairgrad")
    _require_improving_direction(U, "fairgrad")
    beta = _power_root(U, n, p, "fairgrad")
    return U.T @ beta, beta / n


# --------------------------------------------------------------------------- Aligned-MTL
def jacobi_svd(A, tol=1e-15, max_sweeps=100):
    """One-sided (Hestenes) Jacobi SVD of ``A`` (m x k), orthogonalising its columns.

    Returns ``(sigma, Z, V)`` with ``A V = Z diag(sigma)``, ``V`` (k x k) orthogonal,
    ``Z`` unit columns (0 for a zero singular value), ``sigma`` sorted decreasing.
    High relative accuracy in every singular value when ``A = B diag(n)`` with ``B``
    well conditioned (column scaling does not hurt). A working column ``A v_j`` whose
    norm is below ``1e-13 * sum_t |v_tj| |a_t|`` (the rounding level of the combination
    it holds) is a numerical zero of a rank-deficient ``A``: it is no longer rotated
    (rotating noise against the other columns would never converge).
    """
    A = np.array(A, dtype=np.float64, copy=True)
    k = A.shape[1]
    V = np.eye(k)
    mass0 = row_norms(A.T)

    def dead(j, sq):
        return math.sqrt(sq) <= 1e-13 * float(np.abs(V[:, j]) @ mass0)

    for _ in range(max_sweeps):
        rotated = False
        for i in range(k - 1):
            for j in range(i + 1, k):
                a = A[:, i] @ A[:, i]
                b = A[:, j] @ A[:, j]
                g = A[:, i] @ A[:, j]
                if abs(g) <= tol * math.sqrt(a) * math.sqrt(b) or dead(i, a) or dead(j, b):
                    continue
                zeta = (b - a) / (2.0 * g)
                t = math.copysign(1.0, zeta) / (abs(zeta) + math.hypot(1.0, zeta))
                if t == 0.0:
                    continue
                rotated = True
                cs = 1.0 / math.hypot(1.0, t)
                sn = cs * t
                Ai, Aj = A[:, i].copy(), A[:, j].copy()
                A[:, i], A[:, j] = cs * Ai - sn * Aj, sn * Ai + cs * Aj
                Vi, Vj = V[:, i].copy(), V[:, j].copy()
                V[:, i], V[:, j] = cs * Vi - sn * Vj, sn * Vi + cs * Vj
        if not rotated:
            break
    else:
        raise RuntimeError("jacobi_svd: no convergence")
    sigma = row_norms(A.T)
    order = np.argsort(-sigma, kind="stable")
    sigma, A, V = sigma[order], A[:, order], V[:, order]
    Z = A / np.where(sigma > 0, sigma, 1.0)[None, :]
    return sigma, Z, V


def singular_values(J):
    """Singular values of ``J`` (decreasing) to high relative accuracy (Jacobi on ``J^T``)."""
    return jacobi_svd(_jacobian(J).T)[0]


def aligned_mtl(J, scale_mode="min", pref=None, lower_median=False, eig_rtol=None):
    """Aligned-MTL: ``w = B p``, ``B = s V diag(lam^-1/2) V^T`` on the nonzero eigenvalues.

    ``G = V diag(lam) V^T``; ``s = sqrt(min lam)`` (``'min'``), ``sqrt(median lam)``
    (``'median'``; numpy's median, the mean of the two middle eigenvalues for an even
    count, or the lower one with ``lower_median=True`` as ``torch.median`` in the
    official code) or ``sqrt(mean lam)`` (``'rmse'``), over the nonzero eigenvalues.
    ``p`` defaults to ``1/T`` each (TorchJD; the official code uses ``p = 1``).
    Returns ``(d, w)``; ``d = s Z_r V_r^T p`` from the SVD ``J = V diag(sigma) Z^T``.

    Supports every ``J``: the rank is that of the nonzero unit rows (``RANK_TOL``),
    ``J = 0`` gives zeros. For repeated nonzero eigenvalues ``V`` is not unique but
    ``B`` and ``d`` are. ``eig_rtol``: also drop the eigenvalues below ``eig_rtol *
    max(lam)``, the official code's float32 rank masking (``T * eps_float32``).
    """
    J = _jacobian(J)
    T, P = J.shape
    if scale_mode not in ("min", "median", "rmse"):
        raise ValueError(f"aligned_mtl: scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
    p = _pref(pref, T)
    n, _, U = _unit_rows(J)
    live = U[n > 0]
    rank = int(np.sum(np.linalg.svd(live, compute_uv=False) > RANK_TOL)) if len(live) else 0
    if rank == 0:
        return np.zeros(P), np.zeros(T)
    sigma, Z, V = jacobi_svd(J.T)          # J^T V = Z diag(sigma)  =>  J = V diag(sigma) Z^T
    if eig_rtol is not None:
        rank = min(rank, int(np.sum(sigma**2 > eig_rtol * sigma[0] ** 2)))
    sigma, Z, V = sigma[:rank], Z[:, :rank], V[:, :rank]
    lam = sigma ** 2
    if scale_mode == "min":
        scale = sigma[-1]
    elif scale_mode == "median":
        if lower_median:
            scale = math.sqrt(np.sort(lam)[(rank - 1) // 2])
        else:
            scale = math.sqrt(np.median(lam))
    else:
        scale = math.sqrt(np.mean(lam))
    coef = V.T @ p
    return scale * (Z @ coef), scale * (V @ (coef / sigma))


# --------------------------------------------------------------------------- PCGrad
def pcgrad(J, orders=None):
    """PCGrad (Yu et al. 2020) for given projection orders; ``reduction='sum'``.

    For each ``i``: ``g_i' = g_i``, then for ``j`` in ``orders[i]`` (in order; ``j == i``
    is skipped, so a full permutation of ``range(T)`` may be passed, as jaxmtl and
    TorchJD draw them): if ``g_i' . g_j < 0``, ``g_i' -= (g_i' . g_j / |g_j|^2) g_j``.
    ``d = sum_i g_i'``. Returns ``(d, w)``. ``orders`` may be omitted for ``T <= 2``
    (the order is irrelevant); zero gradients are never projected on. Any ``J``.
    """
    J = _jacobian(J)
    T, P = J.shape
    if orders is None:
        if T > 2:
            raise ValueError("pcgrad: orders is required for T > 2")
        orders = [[j for j in range(T) if j != i] for i in range(T)]
    if len(orders) != T:
        raise ValueError(f"pcgrad: need one order per task ({T}), got {len(orders)}")
    n, _, U = _unit_rows(J)
    d = np.zeros(P)
    w = np.zeros(T)
    for i, order in enumerate(orders):
        gi = J[i].copy()
        ci = np.zeros(T)
        ci[i] = 1.0
        for j in order:
            j = int(j)
            if not 0 <= j < T:
                raise ValueError(f"pcgrad: task index {j} out of range")
            if j == i or n[j] == 0:
                continue
            dot = gi @ U[j]
            if dot < 0:
                gi -= dot * U[j]
                ci[j] -= dot / n[j]
        d += gi
        w += ci
    return d, w
