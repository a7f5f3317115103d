"""IMTL-G: the update with equal projections on every task's unit gradient.

Liu et al. (2021), "Towards Impartial Multi-task Learning" (the gradient part).
Update rule: find ``d = J^T w`` with ``sum(w) = 1`` and ``u_t . d`` equal for all
tasks (``u_t = g_t / |g_t|``). In Gramian form (TorchJD):
``v = G^+ n`` with ``n_t = |g_t| = sqrt(G_tt)``, ``w = v / sum(v)``; this is the
closed form of the paper's ``alpha = g_1 U^T (D U^T)^{-1}`` for full rank.
Weights are invariant to a common rescaling (``d`` is linear) and permutation
equivariant. When ``sum(v)`` vanishes (e.g. opposite gradients) the weights are
0, as in TorchJD. ``pinv`` uses ``rcond = 1e-4`` relative to the largest
singular value of the trace-normalised Gramian.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian, task_norms
from jaxmtl.method import stateless, weighted_method


def imtl_g_weights(gramian: jax.Array, *, rcond: float = 1e-4) -> jax.Array:
    """IMTL-G weights from any Gramian."""
    g = normalize_gramian(gramian)
    v = jnp.linalg.pinv(g, rtol=rcond, hermitian=True) @ task_norms(g)
    total = jnp.sum(v)
    ok = jnp.abs(total) > 1e-12 * (1.0 + jnp.sum(jnp.abs(v)))
    return jnp.where(ok, v / jnp.where(ok, total, 1.0), 0.0)


def imtl_g(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """IMTL-G as an optax transformation (see the module docstring)."""
    return weighted_method(stateless(imtl_g_weights), name="imtl_g", num_tasks=num_tasks)
