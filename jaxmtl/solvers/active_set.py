"""Small dense QPs over the task weights, solved exactly by a primal active-set method.

:func:`nonneg_qp` solves ``min_{x >= 0} 1/2 x^T Q x + b^T x`` with the primal
active-set method of Lawson & Hanson (1974, NNLS) written for a QP: keep a
feasible ``x`` and a *free set*; solve the equality-constrained problem on the
free set exactly (one ``T x T`` linear solve); if that point is feasible, move
there and free the coordinate with the most negative gradient (stop when none
is below ``-tol``); otherwise step towards it until a free coordinate hits
zero and fix that one. The objective decreases monotonically, so the method
cannot cycle (unlike primal-dual active-set/semismooth Newton iterations,
which do on some positive-definite ``Q``) and ends after about twice the
number of positive coordinates of the solution.

Budget: ``max_iter`` iterations (default ``4 T + 10``), one ``O(T^3)`` solve
each; negligible next to a backward pass for ``T`` up to a few hundred.
Tolerance: optimality when every gradient entry of a fixed coordinate is
``>= -tol`` with ``tol = 1e-6 * max(1, |Q|_max, |b|_max)``. The output is always
feasible and finite for finite input, also when the budget runs out.

:func:`simplex_qp` solves ``min_{x in simplex} x^T Q x`` through the exact
reduction ``x = v / sum(v)``, ``v = argmin_{v >= 0} 1/2 v^T Q v - 1^T v`` (the
KKT conditions of the two problems coincide with ``nu = -1 / sum(v)``).

``Q`` must be symmetric positive definite: callers add a small ridge where the
Gramian may be singular. Pure JAX: jittable and vmappable.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _solve_free(q: jax.Array, b: jax.Array, free: jax.Array) -> jax.Array:
    """Minimiser of the objective with the fixed coordinates at 0 (zero there)."""
    f = free.astype(q.dtype)
    m = q * f[:, None] * f[None, :] + jnp.diag(1.0 - f)
    z = jnp.linalg.solve(m, jnp.where(free, -b, 0.0))
    return jnp.where(free, z, 0.0)


def nonneg_qp(q: jax.Array, b: jax.Array, *, x0: jax.Array | None = None,
              max_iter: int | None = None) -> jax.Array:
    """``argmin_{x >= 0} 1/2 x^T Q x + b^T x`` (see the module docstring).

    Args:
      q: ``(T, T)`` symmetric positive definite matrix.
      b: ``(T,)`` linear term.
      x0: optional warm start (e.g. the previous step's solution); its positive
        entries form the first free set.
      max_iter: iteration budget (default ``4 T + 10``).
    """
    q = jnp.asarray(q, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    t = b.shape[-1]
    tol = 1e-6 * jnp.maximum(1.0, jnp.maximum(jnp.max(jnp.abs(q)), jnp.max(jnp.abs(b))))
    if x0 is None:
        x = jnp.zeros((t,), jnp.float32)
    else:
        x = jnp.maximum(jnp.nan_to_num(jnp.asarray(x0, jnp.float32)), 0.0)
    idx = jnp.arange(t)

    def body(carry):
        k, x, free, _ = carry
        z = _solve_free(q, b, free)
        feasible = jnp.all(jnp.where(free, z > 0, True))
        # feasible: move to z, then free the most violated fixed coordinate (if any)
        grad = q @ z + b
        violation = jnp.where(free, jnp.inf, grad)
        j = jnp.argmin(violation)
        optimal = violation[j] >= -tol
        free_a = free | ((idx == j) & ~optimal)
        # infeasible: step from x towards z until the first free coordinate hits 0
        blocking = free & (z <= 0)
        ratios = jnp.where(blocking, x / jnp.where(blocking, x - z, 1.0), jnp.inf)
        i = jnp.argmin(ratios)
        alpha = jnp.clip(ratios[i], 0.0, 1.0)
        x_b = jnp.maximum(x + alpha * (z - x), 0.0)
        free_b = free & (x_b > 0) & (idx != i)
        x_b = jnp.where(free_b, x_b, 0.0)
        x_new = jnp.where(feasible, z, x_b)
        free_new = jnp.where(feasible, free_a, free_b)
        done = feasible & optimal
        return k + 1, x_new, free_new, done

    def cond(carry):
        k, _, _, done = carry
        return (k < (max_iter or 4 * t + 10)) & ~done

    _, x, _, _ = jax.lax.while_loop(cond, body, (0, x, x > 0, jnp.array(False)))
    return jnp.maximum(jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0)


def simplex_qp(q: jax.Array, *,
               max_iter: int | None = None) -> jax.Array:
    """``argmin_{x >= 0, sum(x) = 1} x^T Q x`` (see the module docstring).

    With ``Q = J J^T`` this is the min-norm point of the convex hull of the
    rows of ``J`` (MGDA). Returns the uniform point if no usable solution came out.
    """
    q = jnp.asarray(q, jnp.float32)
    t = q.shape[-1]
    v = nonneg_qp(q, -jnp.ones((t,), jnp.float32), max_iter=max_iter)
    total = jnp.sum(v)
    ok = jnp.isfinite(total) & (total > 0)
    return jnp.where(ok, v / jnp.where(ok, total, 1.0), jnp.full((t,), 1.0 / t))
