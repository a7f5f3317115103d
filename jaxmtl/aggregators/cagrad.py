"""CAGrad: conflict-averse gradient descent."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register
from jaxmtl.solvers import implicit_root, simplex_qp

__all__ = ["cagrad", "cagrad_weights"]

RESCALES = (0, 1, 2)


def cagrad_weights(gramian: jax.Array | ScaledGramian, *, c: float | jax.Array = 0.4,
                   rescale: int | jax.Array = 1, num_iters: int | jax.Array = 40,
                   reg: float | jax.Array = 1e-6) -> jax.Array:
    """CAGrad weights from a Gramian of any origin (``d = J^T w``); see :func:`cagrad`."""
    check("c", c, lambda v: v >= 0, "non-negative")
    check("rescale", rescale, lambda v: (v == 0) | (v == 1) | (v == 2), "0, 1 or 2")
    cf = cosine_form(gramian)
    c = as_float(c)
    t = cf.cos.shape[0]
    n = cf.norms
    # in v = N w: |g_w|^2 = v^T C v, g_w . g0 = v^T C (N b), the simplex is sum_t v_t / n_t = 1
    q = cf.cos + as_float(reg) * jnp.eye(t)
    b = jnp.full((t,), 1.0 / t)
    cnb = cf.cos @ (n * b)
    kappa = c * jnp.sqrt(jnp.maximum((n * b) @ cnb, 0.0))
    alive = cf.alive
    a = jnp.where(alive, jnp.min(jnp.where(alive, n, jnp.inf)) / jnp.where(alive, n, 1.0), 1.0)

    # the optimum satisfies t = |g_w(t)|, w(t) the exact solution of the majorised QP
    #   min_w g_w . g0 + kappa |g_w|^2 / (2 t)
    # (majorise-minimise iterates that fixed point, slowly when the norms are graded);
    # |g_w(t)| - t changes sign once, so bisection on log t finds it.
    hi = 1.0 / jnp.min(a)                           # the longest vertex, in v units
    lo = hi * 1e-15
    # the search runs on constants; the answer's derivative is that of the inner
    # problem's KKT conditions (below), not of the bisection's path
    sg = jax.lax.stop_gradient
    q_in, cnb_in, a_in, kappa_in = q, cnb, a, kappa
    q, cnb, a, kappa = sg(q), sg(cnb), sg(a), sg(kappa)

    def solve(tau, v):
        return simplex_qp((kappa / tau) * q, cnb, a=a, x0=v)

    def bisect(_, carry):
        lo, hi, v = carry
        mid = jnp.sqrt(lo * hi)
        v = solve(mid, v)
        above = jnp.sqrt(jnp.maximum(v @ q @ v, 0.0)) > mid
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid), v

    v0 = n * b                                      # the uniform weights, on the simplex
    v0 = v0 / jnp.maximum(a @ v0, 1e-30)
    lo, hi, v = jax.lax.fori_loop(0, num_iters, bisect, (lo, hi, v0))
    v = solve(jnp.sqrt(lo * hi), v)
    q, cnb, a, kappa = q_in, cnb_in, a_in, kappa_in
    v = _differentiable(v, q, cnb, a, kappa)
    w = cf.from_units(v)
    w = w / jnp.maximum(jnp.sum(w), 1e-30)          # the simplex point in weight space
    norm = jnp.sqrt(jnp.maximum((n * w) @ cf.cos @ (n * w), 0.0))     # |g_w*|, however small
    # g_w* = 0 (0 in the hull) is told from round-off in the scale-free v, not against kappa:
    # a g_w* of tiny tasks is tiny but its direction is exact
    # (a zero Jacobian: every task dead, kappa = 0 and g_w* = 0 with a unit-norm v; lam = 0)
    ok = (jnp.sqrt(jnp.maximum(v @ cf.cos @ v, 0.0)) > 1e-5 * jnp.sqrt(v @ v)) & (norm > 0)
    lam = jnp.where(ok, kappa / jnp.where(ok, norm, 1.0), 0.0)
    divisor = jnp.stack([jnp.ones_like(c), 1.0 + c**2, 1.0 + c])[jnp.asarray(rescale)]
    return (b + lam * w) / divisor


def _inner_kkt(z, theta):
    """KKT conditions of ``min v^T cnb + kappa |v|_q`` over ``v >= 0, a^T v = 1`` on the
    active set of ``v``, in ``z = (v, nu)``."""
    q, cnb, a, kappa = theta
    v, nu = z[:-1], z[-1]
    free = jax.lax.stop_gradient(v) > 0
    qv = q @ v
    length = jnp.sqrt(jnp.maximum(v @ qv, 1e-30))
    return jnp.concatenate([jnp.where(free, cnb + kappa * qv / length + nu * a, v), (a @ v - 1.0)[None]])


def _differentiable(v, q, cnb, a, kappa):
    """``v``, the inner problem's solution, with the derivative of its KKT conditions in
    ``(q, cnb, a, kappa)`` (:func:`jaxmtl.solvers.implicit_root`). The identity when
    nothing is differentiated; when ``kappa = 0`` (a zero mean gradient) the inner problem
    is linear and its solution a vertex, of derivative 0."""
    v = jax.lax.stop_gradient(v)
    free = v > 0
    qv = q @ v
    g = cnb + kappa * qv / jnp.sqrt(jnp.maximum(v @ qv, 1e-30))
    nu = -jnp.sum(jnp.where(free, a * g, 0.0)) / jnp.maximum(jnp.sum(jnp.where(free, a**2, 0.0)), 1e-30)
    linear = jax.lax.stop_gradient(kappa) <= 0
    kappa = jnp.where(linear, 1.0, kappa)   # a non-singular system in the branch not taken
    z = implicit_root(_inner_kkt, jnp.concatenate([v, nu[None]]), (q, cnb, a, kappa))
    return jnp.where(linear, v, z[:-1])


@register("cagrad", "CAGrad", "gramian", "Liu et al. 2021", weights=cagrad_weights, scale="linear")
def cagrad(c: float = 0.4, *, rescale: int = 1, num_iters: int = 40, reg: float = 1e-6,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """CAGrad: conflict-averse gradient descent.

    Liu et al. (2021). Update rule: with the mean gradient ``g0 = J^T 1/T`` and ``kappa = c
    |g0|``,

        w* = argmin_{w in simplex} g_w . g0 + kappa |g_w|,     g_w = J^T w,
        d  = g0 + (kappa / |g_w*|) g_w*,

    divided by ``1 + c^2`` (``rescale=1``, the paper's default and LibMTL's), by
    ``1 + c`` (``rescale=2``) or not at all (``rescale=0``). When ``g_w*`` vanishes
    (0 in the convex hull) the update is ``g0`` (rescaled). Linear under positive
    scaling; permutation invariant.

    Solver: with ``t = |g_w|``, ``sqrt(x) <= x / (2 t) + t / 2`` turns the convex
    inner problem into a simplex QP (exact active-set solver, warm-started) whose
    solution ``w(t)`` is the optimum when ``|g_{w(t)}| = t``; that scalar equation
    is solved by ``num_iters`` bisection steps on ``log t`` (40: relative precision
    ~1e-10; iterating the majoriser instead, as a plain majorise-minimise would,
    converges slowly when the norms are graded). Derivatives (meta-learning through
    an update) are exact: the search runs on ``stop_gradient`` inputs and its answer
    carries the derivative of the inner problem's KKT conditions on its active set
    (:func:`jaxmtl.solvers.implicit_root`). The QPs are solved in the
    variables ``v_t = |g_t| w_t``, on the cosine matrix plus ``reg * I``, so gradient
    norms that differ by orders of magnitude lose no accuracy (tested against
    float64 answers; the reference uses scipy's SLSQP).

    Args:
      c: the conflict-aversion radius, ``0.4`` (the paper's Multi-MNIST setting;
        LibMTL uses 0.5, Gama & Grassi grid {0.2, 0.5, 0.8}).
      rescale: ``0``, ``1`` (default) or ``2``, see above.
      num_iters: bisection steps, ``40``.
      reg: ridge on the cosine matrix, ``1e-6``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`cagrad_weights`.

    References:
      - Liu et al. (2021). "Conflict-Averse Gradient Descent for Multi-task Learning"
    """
    check("c", c, lambda v: v >= 0, "non-negative")
    check("rescale", rescale, lambda v: (v == 0) | (v == 1) | (v == 2), "0, 1 or 2")
    check("num_iters", num_iters, lambda v: v >= 1, "a positive integer")
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(cagrad_weights, name="cagrad", num_tasks=num_tasks, c=c, rescale=rescale,
                          num_iters=num_iters, reg=reg)
