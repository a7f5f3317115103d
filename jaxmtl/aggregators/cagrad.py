"""CAGrad: conflict-averse gradient descent."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check
from jaxmtl.gramian import ScaledGramian, cosine_form
from jaxmtl.method import gramian_method
from jaxmtl.solvers import simplex_qp

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


def cagrad(c: float = 0.4, *, rescale: int = 1, num_iters: int = 40, reg: float = 1e-6,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """CAGrad: conflict-averse gradient descent.

    Liu et al. (2021), "Conflict-Averse Gradient Descent for Multi-task
    Learning". Update rule: with the mean gradient ``g0 = J^T 1/T`` and
    ``kappa = c |g0|``,

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
    converges slowly when the norms are graded). The QPs are solved in the
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
    """
    check("c", c, lambda v: v >= 0, "non-negative")
    check("rescale", rescale, lambda v: (v == 0) | (v == 1) | (v == 2), "0, 1 or 2")
    check("num_iters", num_iters, lambda v: v >= 1, "a positive integer")
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(cagrad_weights, name="cagrad", num_tasks=num_tasks, c=c, rescale=rescale,
                          num_iters=num_iters, reg=reg)
