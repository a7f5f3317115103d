"""Solving ``G x = x^(-p)`` (elementwise, ``x > 0``) by damped Newton on a convex potential.

Nash-MTL (``p = 1``: ``G a = 1/a``, Navon et al. 2022) and FairGrad
(``p = 1/alpha``, Ban & Ji 2024) need the positive root of ``G x = x^(-p)``.
It is the minimiser of the strictly convex potential

    f(x) = 1/2 x^T G x + sum_i h(x_i),   h(x) = -log x (p = 1),
                                          h(x) = -x^(1-p) / (1-p) (p != 1),

whose gradient is ``G x - x^(-p)``. Each iteration takes the Newton direction
(Hessian ``G + diag(p x^(-p-1))``, positive definite), starts from the full
step capped at 0.9 of the distance to the boundary ``x > 0``, and halves it (at
most ``max_halvings`` times) until the squared residual ``|G x - x^(-p)|^2``
drops by the Armijo factor ``1 - s/2`` (the potential itself cannot be used:
near the root its decrease is below float32 resolution). Far below the
root a full step multiplies ``x`` by about ``1 + 1/p``, so the classical damped
step ``1 / (1 + lambda)`` (which shrinks as ``x`` grows) would be far slower.
Fixed budget of ``iters`` iterations (Nash-MTL's ``optim_niter=20``);
converges quadratically near the root. ``G`` needs a ridge when singular
(otherwise the root may not exist); the callers add one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _residual2(g, x, p):
    r = g @ x - x ** (-p)
    return r @ r


def power_root(g: jax.Array, p: float = 1.0, *, x0: jax.Array | None = None, iters: int = 20,
               max_halvings: int = 30) -> jax.Array:
    """The positive ``x`` with ``G x = x^(-p)`` (see the module docstring).

    Args:
      g: ``(T, T)`` symmetric positive definite matrix.
      p: the power (``> 0``).
      x0: positive warm start (default ``diag(G)^(-1/(1+p))``, the root for diagonal ``G``).
      iters: Newton iterations.
    """
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    g = jnp.asarray(g, jnp.float32)
    d = jnp.maximum(jnp.diag(g), 1e-12)
    default = d ** (-1.0 / (1.0 + p))
    x = default if x0 is None else jnp.where(jnp.all(x0 > 0) & jnp.all(jnp.isfinite(x0)), x0, default)

    def step(x, _):
        grad = g @ x - x ** (-p)
        hess = g + jnp.diag(p * x ** (-p - 1.0))
        dx = -jnp.linalg.solve(hess, grad)
        shrink = jnp.where(dx < 0, -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
        s = jnp.minimum(1.0, 0.9 * jnp.min(shrink))
        r0 = grad @ grad

        def worse(s):
            return ~(_residual2(g, x + s * dx, p) <= (1.0 - 0.5 * s) * r0)

        s = jax.lax.fori_loop(0, max_halvings, lambda _, s: jnp.where(worse(s), 0.5 * s, s), s)
        new = x + s * dx
        ok = jnp.all(jnp.isfinite(new)) & jnp.all(new > 0)
        return jnp.where(ok, new, x), None

    x, _ = jax.lax.scan(step, x, None, length=iters)
    return x
