"""CAGrad: conflict-averse gradient descent.

Liu et al. (2021), "Conflict-Averse Gradient Descent for Multi-task Learning".
Update rule: with the mean gradient ``g0 = J^T 1/T`` and ``kappa = c |g0|``,

    w* = argmin_{w in simplex} g_w . g0 + kappa |g_w|,     g_w = J^T w,
    d  = g0 + (kappa / |g_w*|) g_w*,

divided by ``1 + c^2`` (``rescale=1``, the paper's default and LibMTL's), by
``1 + c`` (``rescale=2``) or not at all (``rescale=0``). ``c = 0.4`` is the
paper's default for Multi-MNIST-style problems (LibMTL uses 0.5, Gama & Grassi
grid {0.2, 0.5, 0.8}). When ``g_w*`` vanishes (0 in the convex hull) the
update is ``g0`` (rescaled).

Solver: the convex inner problem is solved by majorise-minimise: with
``t_k = |g_{w_k}|``, ``sqrt(x) <= x / (2 t_k) + t_k / 2`` turns it into a simplex QP
(exact active-set solver, warm-started), ``iters = 20`` times (the reference
uses scipy SLSQP). Linear under positive scaling; permutation invariant.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import stateless, weighted_method
from jaxmtl.solvers import simplex_qp

_RESCALES = (0, 1, 2)


def cagrad_weights(gramian: jax.Array, *, c: float = 0.4, rescale: int = 1, iters: int = 20) -> jax.Array:
    """CAGrad weights from any Gramian (``d = J^T w``)."""
    if rescale not in _RESCALES:
        raise ValueError(f"rescale must be one of {_RESCALES}, got {rescale!r}")
    if c < 0:
        raise ValueError(f"c must be non-negative, got {c}")
    g = normalize_gramian(gramian)
    t = g.shape[0]
    b = jnp.full((t,), 1.0 / t)
    gb = g @ b
    kappa = c * jnp.sqrt(jnp.maximum(b @ gb, 0.0))
    ridge = 1e-6 * jnp.eye(t)

    def mm(w, _):
        tk = jnp.sqrt(jnp.maximum(w @ g @ w, 1e-12))
        return simplex_qp((kappa / tk) * (g + ridge), gb, x0=w), None

    w, _ = jax.lax.scan(mm, b, None, length=iters)
    norm = jnp.sqrt(jnp.maximum(w @ g @ w, 0.0))
    ok = norm > 1e-6 * jnp.maximum(kappa, 1e-30)
    lam = jnp.where(ok, kappa / jnp.where(ok, norm, 1.0), 0.0)
    weights = b + lam * w
    return weights / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]


def cagrad(c: float = 0.4, rescale: int = 1, *, iters: int = 20,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """CAGrad as an optax transformation (see the module docstring)."""
    weighting = functools.partial(cagrad_weights, c=c, rescale=rescale, iters=iters)
    weighting(jnp.eye(1))  # validates c and rescale now, not at the first update
    return weighted_method(stateless(weighting), name="cagrad", num_tasks=num_tasks)
