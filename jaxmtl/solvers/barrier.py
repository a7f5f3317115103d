"""Solving ``G x = x^(-p)`` (elementwise, ``x > 0``) by damped Newton.

Nash-MTL (``p = 1``: ``G a = 1/a``, Navon et al. 2022) and FairGrad
(``p = 1/alpha``, Ban & Ji 2024) need the positive root of ``G x = x^(-p)``.
It is the minimiser of the strictly convex potential

    f(x) = 1/2 x^T G x + sum_i h(x_i),   h(x) = -log x (p = 1),
                                          h(x) = -x^(1-p) / (1-p) (p != 1),

whose gradient is ``G x - x^(-p)``.

**Well-conditioned form.** With ``G = D C D`` (``C`` the cosine matrix, ``D``
the gradient norms), the substitution ``x_t = d_t^(-2/(1+p)) z_t`` turns the
equation into ``(C (e z))_t / e_t = z_t^(-p)`` with ``e_t = d_t^((p-1)/(p+1))``:
every row is of order one whatever the norms (for ``p = 1``, ``e = 1`` and the
equation is ``C z = 1/z``: the solution depends on the cosines only, which is
Nash-MTL's invariance to per-task gradient scales). :func:`power_root` solves
that form; callers apply the norms afterwards.

Each iteration takes the Newton direction, computed as
``E dz = -(C + diag(p z^(-p-1)))^-1 E r`` (a symmetric positive definite
solve; ``r`` the residual), starts from the full step capped at 0.9 of the
distance to the boundary ``z > 0``, and halves it (at most ``max_halvings``
times) until ``|r|^2`` drops by the Armijo factor ``1 - s/2`` (the potential
itself cannot be used: near the root its decrease is below float32
resolution). Far below the root a full step multiplies ``z`` by about
``1 + 1/p``, so the classical damped step ``1 / (1 + lambda)`` would be far
slower. Fixed budget of ``num_iters`` iterations (20 by default, Nash-MTL's
``optim_niter``); quadratic convergence near the root. ``C`` needs a ridge
when singular (otherwise the root may not exist); the callers add one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl._checks import check


def power_root(c: jax.Array, p: float | jax.Array = 1.0, *, e: jax.Array | None = None,
               x0: jax.Array | None = None, num_iters: int | jax.Array = 20,
               max_halvings: int = 30) -> jax.Array:
    """The positive ``z`` with ``(C (e z))_t / e_t = z_t^(-p)`` (see the module docstring).

    Args:
      c: ``(T, T)`` symmetric positive definite matrix (a cosine matrix plus a ridge,
        or any Gramian with ``e = None``).
      p: the power (``> 0``; may be traced).
      e: positive per-task row scales (default 1: the plain equation ``C z = z^(-p)``).
      x0: positive warm start (default ``diag(C)^(-1/(1+p))``, the root for diagonal ``C``).
      num_iters: Newton iterations (may be traced).
      max_halvings: step halvings per iteration.

    Returns:
      ``f32[T]``, positive.
    """
    check("p", p, lambda v: v > 0, "positive")
    c = jnp.asarray(c, jnp.float32)
    p = jnp.asarray(p, jnp.float32)
    t = c.shape[0]
    e = jnp.ones((t,), jnp.float32) if e is None else jnp.asarray(e, jnp.float32)
    default = jnp.maximum(jnp.diag(c), 1e-12) ** (-1.0 / (1.0 + p))
    x = default if x0 is None else jnp.where(jnp.all(x0 > 0) & jnp.all(jnp.isfinite(x0)),
                                             jnp.asarray(x0, jnp.float32), default)

    def residual(z):
        return (c @ (e * z)) / e - z ** (-p)

    def step(_, z):
        r = residual(z)
        y = jnp.linalg.solve(c + jnp.diag(p * z ** (-p - 1.0)), -(e * r))
        dz = y / e
        shrink = jnp.where(dz < 0, -z / jnp.where(dz < 0, dz, -1.0), jnp.inf)
        s = jnp.minimum(1.0, 0.9 * jnp.min(shrink))
        r0 = r @ r

        def worse(s):
            rs = residual(z + s * dz)
            return ~(rs @ rs <= (1.0 - 0.5 * s) * r0)

        s = jax.lax.fori_loop(0, max_halvings, lambda _, s: jnp.where(worse(s), 0.5 * s, s), s)
        new = z + s * dz
        ok = jnp.all(jnp.isfinite(new)) & jnp.all(new > 0)
        return jnp.where(ok, new, z)

    return jax.lax.fori_loop(0, num_iters, step, x)
