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

Warm start: a few primal-dual active-set (semismooth Newton) steps first
(Hintermüller, Ito & Kunisch 2002): guess the free set, solve on it, then free
every fixed coordinate whose gradient is negative and fix every free one that
came out non-positive, until the guess repeats (``pdas_iter`` steps at most,
default 10). On the Gramians of MTL this finds the solution's support in 2-5
solves where the primal method needs one solve per positive coordinate (35
solves at T = 40, 107 at T = 128 for MGDA). It can cycle on some matrices, so
its answer only seeds the primal method (made feasible and clipped), which
then certifies it in one step or carries on monotonically from there.

Budget: ``max_iter`` primal iterations (default ``4 T + 10``), one ``O(T^3)``
solve each: negligible next to a backward pass for ``T`` up to a few hundred.
Tolerance: ``tol = 1e-6 * max(1, |Q|_max, |b|_max)``. The output is always
feasible and finite for finite input, also when the budget runs out.
Warm start from the caller: ``x0`` (feasible) and its positive entries as the
first free set of both stages.

``Q`` must be symmetric positive definite (on the simplex's tangent space
for :func:`simplex_qp`): callers add a small ridge where the Gramian may be
singular. Pure JAX: jittable and vmappable.

Derivatives: the solvers run on ``stop_gradient`` inputs and their answers carry
the derivative of the KKT conditions restricted to the active set
(:func:`jaxmtl.solvers.implicit_root`): on that set the solution solves a linear
system (bordered by ``a^T x = 1`` for the simplex), and its derivative is one
more solve of that system. Exact, in forward and reverse mode, wherever the
active set is stable; no derivative goes through the ``while_loop``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl.solvers.implicit import implicit_root


def _solve_free(q, b, free, a, cholesky=False):
    """Minimiser on the free set with the fixed coordinates at 0, and the multiplier
    of ``a^T x = 1`` (``a is None``: no equality constraint). ``cholesky``: factor the
    free block (half an LU's cost; NaN where it is not numerically positive definite)."""
    t = b.shape[-1]
    f = free.astype(q.dtype)
    m = q * f[:, None] * f[None, :] + jnp.diag(1.0 - f)
    rhs = jnp.where(free, -b, 0.0)
    if cholesky:
        factor = jax.scipy.linalg.cho_factor(m)
        if a is None:
            return jnp.where(free, jax.scipy.linalg.cho_solve(factor, rhs[:, None])[:, 0], 0.0), 0.0
        af = a * f
        y = jax.scipy.linalg.cho_solve(factor, jnp.stack([rhs, af], axis=1))
        nu = (af @ y[:, 0] - 1.0) / (af @ y[:, 1])
        return jnp.where(free, y[:, 0] - nu * y[:, 1], 0.0), nu
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


def _primal_dual(q, b, a, free, steps):
    """Up to ``steps`` primal-dual active-set steps from the free set ``free``: the last
    free-set solution (infeasible where the steps ran out before the set repeated) and
    whether the set repeated (then the solution meets the KKT conditions exactly)."""
    def body(carry):
        k, free, _, _ = carry
        z, nu = _solve_free(q, b, free, a, cholesky=True)
        gradient = q @ z + b + (0.0 if a is None else nu * a)
        guess = jnp.where(free, z > 0, gradient < 0)
        return k + 1, guess, jnp.all(guess == free) & jnp.all(jnp.isfinite(z)), z

    def cond(carry):
        k, _, repeated, _ = carry
        return (k < steps) & ~repeated

    _, _, repeated, z = jax.lax.while_loop(cond, body, (0, free, jnp.array(False), jnp.zeros_like(b)))
    return z, repeated


def _active_set(q, b, x0, a, max_iter, pdas_iter):
    q = jnp.asarray(q, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    t = b.shape[-1]
    tol = 1e-6 * jnp.maximum(1.0, jnp.maximum(jnp.max(jnp.abs(q)), jnp.max(jnp.abs(b))))
    idx = jnp.arange(t)
    if x0 is not None:
        x0 = jnp.maximum(jnp.nan_to_num(jnp.asarray(x0, jnp.float32)), 0.0)
    guess = b < 0 if a is None else jnp.ones((t,), bool)   # x = 0's descent coordinates / all
    solved = jnp.array(False)
    if pdas_iter:
        z, solved = _primal_dual(q, b, a, guess if x0 is None else x0 > 0, pdas_iter)
        seeded = jnp.maximum(jnp.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
        x0 = seeded if x0 is None else jnp.where(jnp.all(jnp.isfinite(z)), seeded, x0)
    if x0 is not None:
        x = x0
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

    _, x, _, _ = jax.lax.while_loop(cond, body, (0, x, x > 0, solved))
    return jnp.maximum(jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), 0.0)


def nonneg_qp(q: jax.Array, b: jax.Array, *, x0: jax.Array | None = None,
              max_iter: int | None = None, pdas_iter: int = 10) -> jax.Array:
    """``argmin_{x >= 0} 1/2 x^T Q x + b^T x`` (see the module docstring; ``pdas_iter=0``
    runs the primal method alone)."""
    q = jnp.asarray(q, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    sg = jax.lax.stop_gradient
    x = _active_set(sg(q), sg(b), None if x0 is None else sg(x0), None, max_iter, pdas_iter)
    return implicit_root(_nonneg_kkt, x, (q, b))


def simplex_qp(q: jax.Array, b: jax.Array | None = None, *, a: jax.Array | None = None,
               x0: jax.Array | None = None, max_iter: int | None = None, pdas_iter: int = 10) -> jax.Array:
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
    sg = jax.lax.stop_gradient
    q0, b0, a0 = sg(q), sg(b), sg(a)
    x = _active_set(q0, b0, None if x0 is None else sg(x0), a0, max_iter, pdas_iter)
    total = a0 @ x
    ok = jnp.isfinite(total) & (total > 0)
    x = jnp.where(ok, x / jnp.where(ok, total, 1.0), _best_vertex(q0, b0, a0))
    # the multiplier of a^T x = 1 from the free coordinates' stationarity (least squares)
    free = x > 0
    g = q0 @ x + b0
    nu = -jnp.sum(jnp.where(free, a0 * g, 0.0)) / jnp.maximum(jnp.sum(jnp.where(free, a0**2, 0.0)), 1e-30)
    z = implicit_root(_simplex_kkt, jnp.concatenate([x, nu[None]]), (q, b, a))
    return z[:t]


def _nonneg_kkt(x, theta):
    """KKT conditions of :func:`nonneg_qp` on the active set of ``x``: ``(Q x + b)_i = 0`` on
    the free coordinates, ``x_i = 0`` on the fixed ones."""
    q, b = theta
    free = jax.lax.stop_gradient(x) > 0
    return jnp.where(free, q @ x + b, x)


def _simplex_kkt(z, theta):
    """KKT conditions of :func:`simplex_qp` on the active set, in ``z = (x, nu)``:
    ``(Q x + b + nu a)_i = 0`` on the free coordinates, ``x_i = 0`` on the fixed ones,
    ``a^T x = 1``."""
    q, b, a = theta
    x, nu = z[:-1], z[-1]
    free = jax.lax.stop_gradient(x) > 0
    return jnp.concatenate([jnp.where(free, q @ x + b + nu * a, x), (a @ x - 1.0)[None]])
