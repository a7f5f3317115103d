"""Small dense QPs over the task weights, solved exactly by a primal active-set method.

:func:`nonneg_qp` solves ``min_{x >= 0} 1/2 x^T Q x + b^T x`` and
:func:`simplex_qp` the same over the (weighted) simplex ``x >= 0``,
``a^T x = 1`` (``a = 1``: the probability simplex), with the primal
active-set method of Lawson & Hanson (1974, NNLS) written for a QP: keep a
feasible ``x`` and a *free set*; solve the equality-constrained problem on the
free set exactly (one linear solve of size ``T``, bordered by ``a^T x = 1``
for the simplex); if that point is feasible, move there and free the fixed
coordinate whose gradient (plus the constraint's multiplier) is most
negative, stopping when none is below ``-tol``; otherwise step towards it
until a free coordinate hits zero and fix that one. The objective decreases
monotonically, so the method cannot cycle (unlike primal-dual active-set /
semismooth Newton iterations, which do on some positive-definite ``Q``) and
ends after about twice the number of positive coordinates of the solution.

Budget: ``max_iter`` iterations (default ``4 T + 10``), one ``O(T^3)`` solve
each: negligible next to a backward pass for ``T`` up to a few hundred.
Tolerance: ``tol = 1e-6 * max(1, |Q|_max, |b|_max)``. The output is always
feasible and finite for finite input, also when the budget runs out.
Warm start: ``x0`` (feasible) and its positive entries as the first free set.

``Q`` must be symmetric positive definite (on the simplex's tangent space
for :func:`simplex_qp`): callers add a small ridge where the Gramian may be
singular. Pure JAX: jittable and vmappable.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _solve_free(q, b, free, a):
    """Minimiser on the free set with the fixed coordinates at 0, and the multiplier
    of ``a^T x = 1`` (``a is None``: no equality constraint)."""
    t = b.shape[-1]
    f = free.astype(q.dtype)
    m = q * f[:, None] * f[None, :] + jnp.diag(1.0 - f)
    rhs = jnp.where(free, -b, 0.0)
    if a is None:
        return jnp.where(free, jnp.linalg.solve(m, rhs), 0.0), 0.0
    af = a * f
    m = jnp.block([[m, af[:, None]], [af[None, :], jnp.zeros((1, 1), q.dtype)]])
    sol = jnp.linalg.solve(m, jnp.concatenate([rhs, jnp.ones((1,), q.dtype)]))
    return jnp.where(free, sol[:t], 0.0), sol[t]


def _best_vertex(q, b, a):
    """The vertex ``e_j / a_j`` of the weighted simplex with the lowest objective."""
    t = b.shape[-1]
    j = jnp.argmin(0.5 * jnp.diag(q) / a**2 + b / a)
    return (jnp.arange(t) == j).astype(jnp.float32) / a[j]


def _active_set(q, b, x0, a, max_iter):
    q = jnp.asarray(q, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    t = b.shape[-1]
    tol = 1e-6 * jnp.maximum(1.0, jnp.maximum(jnp.max(jnp.abs(q)), jnp.max(jnp.abs(b))))
    idx = jnp.arange(t)
    if x0 is not None:
        x = jnp.maximum(jnp.nan_to_num(jnp.asarray(x0, jnp.float32)), 0.0)
        if a is not None:  # rescale a warm start onto the simplex, or start at the best vertex
            total = a @ x
            usable = total > 1e-12
            x = jnp.where(usable, x / jnp.where(usable, total, 1.0), _best_vertex(q, b, a))
    elif a is not None:
        x = _best_vertex(q, b, a)
    else:
        x = jnp.zeros((t,), jnp.float32)

    def body(carry):
        k, x, free, _ = carry
        z, nu = _solve_free(q, b, free, a)
        feasible = jnp.all(jnp.where(free, z > 0, True))
        # feasible: move to z, then free the most violated fixed coordinate (if any)
        violation = jnp.where(free, jnp.inf, q @ z + b + (0.0 if a is None else nu * a))
        j = jnp.argmin(violation)
        optimal = violation[j] >= -tol
        free_a = free | ((idx == j) & ~optimal)
        # infeasible: step from x towards z until the first free coordinate hits 0, fix it
        blocking = free & (z <= 0)
        ratios = jnp.where(blocking, x / jnp.where(blocking, x - z, 1.0), jnp.inf)
        i = jnp.argmin(ratios)
        x_b = jnp.maximum(x + jnp.clip(ratios[i], 0.0, 1.0) * (z - x), 0.0)
        free_b = free & (x_b > 0) & (idx != i)
        x_b = jnp.where(free_b, x_b, 0.0)
        return (k + 1, jnp.where(feasible, z, x_b), jnp.where(feasible, free_a, free_b),
                feasible & optimal)

    def cond(carry):
        k, _, _, done = carry
        return (k < (4 * t + 10 if max_iter is None else max_iter)) & ~done

    _, x, _, _ = jax.lax.while_loop(cond, body, (0, x, x > 0, jnp.array(False)))
    return jnp.maximum(jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0)


def nonneg_qp(q: jax.Array, b: jax.Array, *, x0: jax.Array | None = None,
              max_iter: int | None = None) -> jax.Array:
    """``argmin_{x >= 0} 1/2 x^T Q x + b^T x`` (see the module docstring)."""
    return _active_set(q, b, x0, None, max_iter)


def simplex_qp(q: jax.Array, b: jax.Array | None = None, *, a: jax.Array | None = None,
               x0: jax.Array | None = None, max_iter: int | None = None) -> jax.Array:
    """``argmin 1/2 x^T Q x + b^T x`` over ``x >= 0, a^T x = 1`` (see the module docstring).

    ``a`` (positive, default all ones: the probability simplex) lets a caller
    solve in rescaled variables: with ``Q = J J^T``, ``b = 0`` and ``a = 1`` this
    is the min-norm point of the convex hull of the rows of ``J`` (MGDA); with
    ``x = D w`` it is the same problem on ``D^-1 Q D^-1`` and ``a = 1/diag(D)``.
    Returns the best vertex if no usable solution came out.
    """
    q = jnp.asarray(q, jnp.float32)
    t = q.shape[-1]
    b = jnp.zeros((t,), jnp.float32) if b is None else jnp.asarray(b, jnp.float32)
    a = jnp.ones((t,), jnp.float32) if a is None else jnp.asarray(a, jnp.float32)
    x = _active_set(q, b, x0, a, max_iter)
    total = a @ x
    ok = jnp.isfinite(total) & (total > 0)
    return jnp.where(ok, x / jnp.where(ok, total, 1.0), _best_vertex(q, b, a))
