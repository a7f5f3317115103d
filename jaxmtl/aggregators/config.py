"""ConFIG: the conflict-free direction, scaled by the sum of the projections.

Liu et al. (2024), "ConFIG: Towards Conflict-free Training of Physics Informed
Neural Networks". Update rule: with unit gradients ``u_t = g_t / |g_t|``, the
direction ``d_u = U^+ 1`` (the least-norm ``d`` with ``u_t . d = 1`` for every
task), ``e = d_u / |d_u|``, and ``d = (sum_t g_t . e) e`` (the official default
"projection length"). In Gramian form ``v = D^{-1} (D^{-1} G D^{-1})^+ 1``
(``D = diag(|g_t|)``) gives ``d_u = J^T v`` and ``w = (1^T G v / v^T G v) v``.
Tasks with zero gradient drop out (their unit vector is 0); when no direction
has a positive projection on every unit gradient (e.g. opposite gradients,
``U^+ 1`` vanishes) the update is 0. Non-conflicting
when the unit gradients are linearly independent; linear under scaling;
permutation invariant. ``pinv`` with ``rcond = 1e-4`` (relative; float32 round-off decides the rank below
that).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian, task_norms
from jaxmtl.method import stateless, weighted_method


def config_weights(gramian: jax.Array, *, rcond: float = 1e-4) -> jax.Array:
    """ConFIG weights from any Gramian."""
    g = normalize_gramian(gramian)
    n = task_norms(g)
    alive = n > 1e-12
    inv = jnp.where(alive, 1.0 / jnp.where(alive, n, 1.0), 0.0)
    cos = g * inv[:, None] * inv[None, :]
    y = jnp.linalg.pinv(cos, rtol=rcond, hermitian=True) @ alive.astype(g.dtype)
    v = inv * y
    norm2 = v @ g @ v
    # |y| >= 1/T when some direction has positive projection on every unit gradient; a
    # vanishing y (e.g. exactly opposite gradients) means there is none: d = 0
    ok = (jnp.sum(jnp.abs(y)) > 1e-3) & (norm2 > 1e-20)
    return jnp.where(ok, (jnp.sum(g @ v) / jnp.where(ok, norm2, 1.0)) * v, 0.0)


def config(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ConFIG as an optax transformation (see the module docstring)."""
    return weighted_method(stateless(config_weights), name="config", num_tasks=num_tasks)
