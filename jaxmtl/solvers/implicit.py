"""Derivatives of a solver's answer by the implicit function theorem.

An inner solver (active set, bisection, Newton with a data-dependent number of
steps) finds a root ``z*`` of its optimality conditions ``F(z, theta) = 0``; reverse-mode
differentiation through its loops is either impossible (``lax.while_loop``) or wrong
(the iterations' path, not the answer's). :func:`implicit_root` attaches to ``z*``
the derivative of the root itself,

    dz = -(dF/dz)^-1 (dF/dtheta) dtheta,

as a ``jax.custom_jvp`` whose tangent is one dense linear solve (``jnp.linalg.solve``,
which JAX can transpose): forward and reverse mode, ``jit`` and ``vmap`` all work, and
the solver runs on ``stop_gradient`` inputs so no derivative ever enters its loops.

For the QPs of :mod:`jaxmtl.solvers.active_set` the conditions are the KKT
conditions restricted to the solution's active set (``x_i = 0`` on the fixed
coordinates, a zero gradient of the Lagrangian on the free ones, the equality
constraint): on that set the solution is the solution of a linear system, whose
derivative this is. It is exact wherever the active set does not change under a
small perturbation (strict complementarity); at a change of active set the
solution is not differentiable and this gives one of its one-sided derivatives.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def implicit_root(residual: Callable[[jax.Array, Any], jax.Array], z: jax.Array, theta: Any) -> jax.Array:
    """``z`` (a root of ``residual(z, theta) = 0`` found by any means, e.g. a solver run on
    ``stop_gradient(theta)``) with the implicit function theorem's derivative in ``theta``.

    ``residual`` must depend on ``theta`` only through its argument (no closed-over
    arrays) and have a non-singular Jacobian in ``z`` at the root; ``theta`` is a pytree of
    floating arrays. The tangent of ``z`` itself is ignored.
    """
    del residual, theta
    return z


@implicit_root.defjvp
def _implicit_root_jvp(residual, primals, tangents):
    z, theta = primals
    _, dtheta = tangents
    jac = jax.jacfwd(lambda y: residual(y, theta))(z)
    _, dr = jax.jvp(lambda p: residual(z, p), (theta,), (dtheta,))
    dz = jnp.linalg.solve(jac, -dr.astype(jac.dtype))
    return z, dz.astype(z.dtype)
