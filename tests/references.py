"""Plain-NumPy (float64) reference implementations of jaxmtl's stateful methods.

Each function replays a method over a whole sequence of steps and returns the
trajectory of its task weights, so a test can compare jaxmtl step by step (not
only at the first update). Nothing here imports jax, optax or jaxmtl: the rules
are re-derived from the methods' papers / official code and from the update rules
documented in jaxmtl's module docstrings.

Conventions
-----------
* ``K`` steps, ``T`` tasks, ``P`` parameters. Everything is computed in float64.
* Loss weightings: ``f(losses_seq, **hyper) -> weights`` with ``losses_seq`` of
  shape ``(K, T)`` and ``weights`` of shape ``(K, T)``: row ``k`` holds the weights
  that multiply the task gradients at step ``k`` (``d_k = sum_t w[k, t] g_t``).
  For methods that learn their weights (UW, IMTL-L, GradNorm, FAMO) these are the
  weights *before* that step's own update of the learned parameters, except FAMO,
  whose logits are updated at the start of step ``k >= 1`` (from the decrease
  observed since step ``k - 1``) and then used at step ``k``.
* Stateful aggregators: ``f(J_seq, ...) -> (updates, weights)``, ``J_seq`` of shape
  ``(K, T, P)``, ``updates`` ``(K, P)`` (the aggregated direction ``d_k``), ``weights``
  ``(K, T)`` = what jaxmtl records in ``state.weights`` after step ``k`` (documented
  per function: MoCo's lambda, SDMGrad's simplex iterate, ...; these are not always
  the coefficients of the current Jacobian).
* ``adam`` reproduces ``optax.adam`` exactly (bias correction with the step count
  starting at 1, ``eps`` outside the square root, ``eps_root = 0``).
"""
from __future__ import annotations

import numpy as np

TINY = 1e-12  # jaxmtl's floor on |L| before dividing by or taking the log of a loss


# --------------------------------------------------------------------------- helpers
class adam:
    """A tiny stateful Adam with ``optax.adam``'s semantics.

    ``update(g)`` returns the *update* (``-lr * mu_hat / (sqrt(nu_hat) + eps)``), to
    be added to the parameters; the moments and the step count live in the object.
    """

    def __init__(self, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = float(lr), float(b1), float(b2), float(eps)
        self.mu = None
        self.nu = None
        self.count = 0

    def update(self, grad):
        g = np.asarray(grad, np.float64)
        if self.mu is None:
            self.mu = np.zeros_like(g)
            self.nu = np.zeros_like(g)
        self.mu = self.b1 * self.mu + (1.0 - self.b1) * g
        self.nu = self.b2 * self.nu + (1.0 - self.b2) * g * g
        self.count += 1
        mu_hat = self.mu / (1.0 - self.b1 ** self.count)
        nu_hat = self.nu / (1.0 - self.b2 ** self.count)
        return -self.lr * mu_hat / (np.sqrt(nu_hat) + self.eps)


def softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


def project_simplex(v):
    """Euclidean projection onto the probability simplex (sort-based, exact)."""
    v = np.asarray(v, np.float64)
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    idx = np.arange(1, v.size + 1)
    r = np.nonzero(u - (css - 1.0) / idx > 0)[0][-1]
    theta = (css[r] - 1.0) / (r + 1.0)
    return np.maximum(v - theta, 0.0)


def _positive(x):
    return np.maximum(np.abs(np.asarray(x, np.float64)), TINY)


def _losses(losses_seq):
    losses = np.asarray(losses_seq, np.float64)
    if losses.ndim != 2:
        raise ValueError(f"losses_seq must have shape (K, T), got {losses.shape}")
    return losses


def _jacobians(J_seq):
    J = np.asarray(J_seq, np.float64)
    if J.ndim != 3:
        raise ValueError(f"J_seq must have shape (K, T, P), got {J.shape}")
    return J


# --------------------------------------------------------------------------- loss weightings
def uncertainty(losses_seq, init=0.0, lr=1e-3):
    """UW (Kendall et al. 2018), LibMTL's parametrisation ``s = log sigma^2``.

    ``w = exp(-s) / 2``; then ``s`` takes one Adam(lr) step on
    ``d/ds [L / (2 e^s) + s / 2] = 1/2 - L e^{-s} / 2`` (root ``e^s = L``, i.e.
    ``w -> 1 / (2 L)``). ``s`` starts at ``init`` (LibMTL itself starts at -0.5).
    """
    losses = _losses(losses_seq)
    s = np.full(losses.shape[1], float(init))
    opt = adam(lr)
    out = np.empty_like(losses)
    for k, L in enumerate(losses):
        w = 0.5 * np.exp(-s)
        out[k] = w
        s = s + opt.update(0.5 - L * w)
    return out


def imtl_l(losses_seq, lr=1e-3):
    """IMTL-L (Liu et al. 2021): loss ``e^s L - s``, ``w = e^s``; Adam(lr) on
    ``e^s L - 1`` (root: every scaled loss ``e^s L`` equals 1). ``s`` starts at 0."""
    losses = _losses(losses_seq)
    s = np.zeros(losses.shape[1])
    opt = adam(lr)
    out = np.empty_like(losses)
    for k, L in enumerate(losses):
        w = np.exp(s)
        out[k] = w
        s = s + opt.update(w * L - 1.0)
    return out


def famo(losses_seq, gamma=1e-3, lr=0.025, min_losses=None, prev_batch_losses_seq=None):
    """FAMO (Liu et al. 2023), the official algorithm (logits *descend*).

    ``z = softmax(xi)``, ``D = max(L - m, 1e-8)`` (the official code adds 1e-8
    instead), weights ``w = (z / D) / sum(z / D)`` (the gradient of
    ``sum z log D`` normalised by ``c = sum z / D``).

    Logit update at the start of step ``k >= 1`` (step 0 uses ``xi = 0``):
    ``delta = log D(L_{k-1}) - log D(after)`` with ``after =
    prev_batch_losses_seq[k]`` (batch ``k - 1``'s losses re-evaluated after
    step ``k - 1``: the official algorithm) when given, else ``losses_seq[k]``
    (the next batch's losses: jaxmtl's cheaper variant). ``xi`` then takes one
    Adam(lr) step on ``(dz/dxi)^T delta + gamma xi`` (torch ``Adam(weight_decay=
    gamma)`` = ``optax.chain(add_decayed_weights(gamma), adam(lr))``), i.e. it
    *descends* ``sum_t z_t delta_t``: the task whose log-loss fell more loses
    weight. Row 0 of ``prev_batch_losses_seq`` is ignored.
    """
    losses = _losses(losses_seq)
    K, T = losses.shape
    m = np.zeros(T) if min_losses is None else np.asarray(min_losses, np.float64)
    after_seq = None if prev_batch_losses_seq is None else _losses(prev_batch_losses_seq)
    if after_seq is not None and after_seq.shape != losses.shape:
        raise ValueError("prev_batch_losses_seq must have the shape of losses_seq")

    def gap(L):
        return np.maximum(L - m, 1e-8)

    xi = np.zeros(T)
    opt = adam(lr)
    out = np.empty_like(losses)
    for k in range(K):
        if k > 0:
            after = losses[k] if after_seq is None else after_seq[k]
            delta = np.log(gap(losses[k - 1])) - np.log(gap(after))
            z = softmax(xi)
            dz_T_delta = z * (delta - z @ delta)  # (dz/dxi)^T delta; dz/dxi = diag(z) - z z^T
            xi = xi + opt.update(dz_T_delta + gamma * xi)
        z = softmax(xi)
        ratio = z / gap(losses[k])
        out[k] = ratio / np.sum(ratio)
    return out


def dwa(losses_seq, temperature=2.0, steps_per_epoch=1):
    """DWA (Liu et al. 2019). Epoch ``e`` = steps ``[e n, (e+1) n)``; at a step of
    epoch ``e >= 2``: ``r = Lbar(e-1) / Lbar(e-2)`` (epoch means of the losses),
    ``w = T softmax(r / temperature)``; ``w = 1`` during the first two epochs."""
    losses = _losses(losses_seq)
    K, T = losses.shape
    n = int(steps_per_epoch)
    n_epochs = K // n
    means = [np.mean(losses[e * n:(e + 1) * n], axis=0) for e in range(n_epochs)]
    out = np.ones_like(losses)
    for k in range(K):
        e = k // n
        if e >= 2:
            r = _positive(means[e - 1]) / _positive(means[e - 2])
            out[k] = T * softmax(r / temperature)
    return out


def gradnorm(losses_seq, norms_seq, alpha=1.5, lr=1e-3):
    """GradNorm (Chen et al. 2018), LibMTL's parametrisation ``w = T softmax(xi)``.

    ``L(0)`` = the first step's losses; ``r = (L / L(0)) / mean(L / L(0))``;
    target ``c = mean(w n) r^alpha`` (held constant); ``xi`` takes one Adam(lr) step
    on the (sub)gradient of ``sum_t |w_t n_t - c_t|`` (``sign(0) = 0``); the step
    uses the weights before that update. ``norms_seq`` (K, T): ``|g_t|`` per step.
    """
    losses = _positive(_losses(losses_seq))
    norms = np.asarray(norms_seq, np.float64)
    K, T = losses.shape
    xi = np.zeros(T)
    opt = adam(lr)
    L0 = losses[0]
    out = np.empty_like(losses)
    for k in range(K):
        n = norms[k]
        rate = losses[k] / L0
        rate = rate / np.mean(rate)
        z = softmax(xi)
        w = T * z
        out[k] = w
        c = np.mean(w * n) * rate**alpha
        a = np.sign(w * n - c) * n * w  # d sum|.| / d w_t times w_t
        grad = a - z * np.sum(a)        # chain through dw_t/dxi_j = w_t (delta_tj - z_j)
        xi = xi + opt.update(grad)
    return out


def geometric_mean(losses_seq):
    """GLS: ``d (prod L)^(1/T) / d L_t = gm / (T L_t)`` per step (stateless)."""
    losses = _positive(_losses(losses_seq))
    T = losses.shape[1]
    gm = np.exp(np.mean(np.log(losses), axis=1, keepdims=True))
    return gm / (T * losses)


def stch(losses_seq, mu=1.0, pref=None, ideal=None):
    """STCH: ``w = p softmax(p (L - z) / mu)`` per step (``p = 1``, ``z = 0`` by default)."""
    losses = _losses(losses_seq)
    T = losses.shape[1]
    p = np.ones(T) if pref is None else np.asarray(pref, np.float64)
    z = np.zeros(T) if ideal is None else np.asarray(ideal, np.float64)
    return np.stack([p * softmax(p * (L - z) / mu) for L in losses])


def uw_so(losses_seq, temperature=1.0):
    """UW-SO: ``w = softmax((1 / L) / temperature)`` per step (the official code
    adds 1e-8 to ``L``; jaxmtl floors ``|L|`` at 1e-12)."""
    losses = _positive(_losses(losses_seq))
    return np.stack([softmax(1.0 / L / temperature) for L in losses])


# --------------------------------------------------------------------------- stateful aggregators
def moco(J_seq, losses_seq, beta=0.5, beta_sigma=0.5, gamma=0.1, gamma_sigma=0.5, rho=0.0):
    """MoCo (Fernando et al. 2023), LibMTL's form. Step ``k = 1, 2, ...``:
    ``h_t = L_t g_t / (|g_t| + 1e-8)``, ``y <- y - beta/k^beta_sigma (y - h)`` (``y``
    starts at 0), ``lambda <- softmax(lambda - gamma/k^gamma_sigma (Y Y^T + rho I)
    lambda)`` (starts at 1/T), ``d = Y^T lambda``. Records ``lambda``."""
    J = _jacobians(J_seq)
    losses = _losses(losses_seq)
    K, T, P = J.shape
    y = np.zeros((T, P))
    lam = np.full(T, 1.0 / T)
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for i in range(K):
        k = i + 1.0
        g = J[i]
        h = g * (losses[i] / (np.linalg.norm(g, axis=1) + 1e-8))[:, None]
        y = y - beta / k**beta_sigma * (y - h)
        lam = softmax(lam - gamma / k**gamma_sigma * ((y @ y.T + rho * np.eye(T)) @ lam))
        upd[i], rec[i] = y.T @ lam, lam
    return upd, rec


def db_mtl(J_seq, losses_seq, beta=0.9, beta_sigma=0.5):
    """DB-MTL (Lin et al. 2023). Step ``k = 1, 2, ...``: ``lg_t = g_t / (L_t + 1e-8)``
    (gradient of ``log L_t``), ``m <- lg + beta/k^beta_sigma (m - lg)`` (``m`` starts
    at 0), ``w_t = max_s |m_s| / (|m_t| + 1e-8 max_s |m_s|)`` (jaxmtl's relative
    floor; LibMTL: ``+ 1e-8``), ``w = 1`` when every ``m_t`` is 0; ``d = sum w_t m_t``.
    Records ``w`` (the weights of the tracked ``m``)."""
    J = _jacobians(J_seq)
    losses = _losses(losses_seq)
    K, T, P = J.shape
    m = np.zeros((T, P))
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for i in range(K):
        b = beta / (i + 1.0) ** beta_sigma
        lg = J[i] / (losses[i] + 1e-8)[:, None]
        m = lg + b * (m - lg)
        norms = np.linalg.norm(m, axis=1)
        top = np.max(norms)
        w = top / (norms + 1e-8 * top) if top > 0 else np.ones(T)
        upd[i], rec[i] = w @ m, w
    return upd, rec


def excess_mtl(J_seq, robust_step_size=1e-2):
    """ExcessMTL (He et al. 2024), the official code. ``H += g^2`` per task,
    ``r_t = sum g_t^2 / sqrt(H_t + 1e-7)``; step 0 stores ``r0 = r`` and keeps
    ``w = 1``; later ``w <- w exp(eta r / r0)``, renormalised to sum ``T`` (``r / r0``
    taken as 0 where ``r0 = 0``, jaxmtl's guard). ``d = sum w_t g_t``; records ``w``."""
    J = _jacobians(J_seq)
    K, T, P = J.shape
    H = np.zeros((T, P))
    w = np.ones(T)
    r0 = None
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for i in range(K):
        g = J[i]
        H = H + g * g
        r = np.sum(g * g / np.sqrt(H + 1e-7), axis=1)
        if r0 is None:
            r0 = r
        else:
            ratio = np.divide(r, r0, out=np.zeros(T), where=r0 > 0)
            w = w * np.exp(robust_step_size * ratio)
            w = w / np.sum(w) * T
        upd[i], rec[i] = w @ g, w
    return upd, rec


def modo(J_seq, Jb_seq, Jc_seq, gamma=1e-3, rho=0.1):
    """MoDo (Chen et al. 2023): ``lambda <- P_simplex(lambda - gamma (J_b J_c^T lambda +
    rho lambda))`` (starts at 1/T), ``d = J_a^T lambda`` with ``J_a = J_seq[k]``.
    Records ``lambda``."""
    J, Jb, Jc = _jacobians(J_seq), _jacobians(Jb_seq), _jacobians(Jc_seq)
    K, T, P = J.shape
    lam = np.full(T, 1.0 / T)
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for i in range(K):
        M = Jb[i] @ Jc[i].T
        lam = project_simplex(lam - gamma * (M @ lam + rho * lam))
        upd[i], rec[i] = J[i].T @ lam, lam
    return upd, rec


def sdmgrad(J_seq, Jb_seq, Jc_seq, lamda=0.3, num_iters=20, lr=5.0, momentum=0.5):
    """SDMGrad (Xiao et al. 2023), LibMTL's form. ``M = J_b J_c^T`` divided by
    ``mean_t sqrt(max(M_tt, 0))^2`` (when positive; LibMTL adds 1e-8 instead);
    ``num_iters`` steps of heavy-ball SGD (momentum buffer reset to 0 every step,
    ``buf <- momentum buf + M w + lamda M 1/T``, ``w <- P_simplex(w - lr buf)``) from
    the previous ``w`` (starts at 1/T); ``d = J_a^T (w + lamda/T) / (1 + lamda)``.
    Records ``w`` (the simplex iterate, not the final coefficients)."""
    J, Jb, Jc = _jacobians(J_seq), _jacobians(Jb_seq), _jacobians(Jc_seq)
    K, T, P = J.shape
    w = np.full(T, 1.0 / T)
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for i in range(K):
        M = Jb[i] @ Jc[i].T
        scale2 = np.mean(np.sqrt(np.maximum(np.diag(M), 0.0))) ** 2
        if scale2 > 0:
            M = M / scale2
        pull = lamda * np.mean(M, axis=1)
        buf = np.zeros(T)
        for _ in range(int(num_iters)):
            buf = momentum * buf + (M @ w + pull)
            w = project_simplex(w - lr * buf)
        upd[i], rec[i] = J[i].T @ ((w + lamda / T) / (1.0 + lamda)), w
    return upd, rec


def gradvac(J_seq, beta=0.5):
    """GradVac (Wang et al. 2021), whole-model granularity, ``T = 2`` only (the
    projection order is then irrelevant). For ``i`` and ``j = 1 - i``: ``phi =
    cos(g_i, g_j)``, target ``phi_hat = R[i, j]`` (starts at 0); if ``phi <
    phi_hat``: ``g_i' = g_i + |g_i| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 -
    phi_hat^2)) / (|g_j| sqrt(1 - phi_hat^2)) g_j``; ``R[i, j] <- (1 - beta) R[i, j] +
    beta phi``. ``d = g_0' + g_1'``; records the coefficients ``w`` with
    ``d = w_0 g_0 + w_1 g_1``."""
    J = _jacobians(J_seq)
    K, T, P = J.shape
    if T != 2:
        raise ValueError("the gradvac reference covers T = 2 only")
    R = np.zeros((T, T))
    upd, rec = np.empty((K, P)), np.empty((K, T))
    for k in range(K):
        g = J[k]
        norms = np.linalg.norm(g, axis=1)
        w = np.ones(T)
        for i in range(T):
            j = 1 - i
            denom = norms[i] * norms[j]
            phi = float(np.clip(g[i] @ g[j] / denom, -1.0, 1.0)) if denom > 0 else 0.0
            target = R[i, j]
            if denom > 0 and phi < target:
                sin_t = np.sqrt(max(1.0 - target**2, 1e-12))
                w[j] += norms[i] * (target * np.sqrt(1.0 - phi**2) - phi * sin_t) / (norms[j] * sin_t)
            R[i, j] = (1.0 - beta) * target + beta * phi
        upd[k], rec[k] = w @ g, w
    return upd, rec
