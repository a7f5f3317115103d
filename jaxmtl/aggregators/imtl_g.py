"""IMTL-G: the update with equal projections on every task's unit gradient."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["imtl_g", "imtl_g_weights"]


def imtl_g_weights(gramian: jax.Array | ScaledGramian, *, rcond: float | jax.Array = 1e-4) -> jax.Array:
    """IMTL-G weights from a Gramian of any origin; see :func:`imtl_g`."""
    check("rcond", rcond, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    cf = cosine_form(gramian)
    y = jnp.linalg.pinv(cf.cos, rtol=rcond, hermitian=True) @ cf.alive.astype(jnp.float32)
    v = cf.from_units(y)
    total = jnp.sum(v)
    ok = jnp.isfinite(total) & (jnp.abs(total) > 1e-6 * jnp.sum(jnp.abs(v)))
    return jnp.where(ok, v / jnp.where(ok, total, 1.0), 0.0)


@register("imtl_g", "IMTL-G", "gramian", "Liu et al. 2021", weights=imtl_g_weights, scale="linear",
          task_scale="direction", one_task_identity=True, full_rank_only=True)
def imtl_g(*, rcond: float = 1e-4, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """IMTL-G: the update with equal projections on every task's unit gradient.

    Liu et al. (2021) (the gradient part). Update rule: ``d = J^T w`` with ``sum(w) = 1``
    and ``u_t . d`` equal for all tasks (``u_t = g_t / |g_t|``). With the cosine matrix
    ``C`` and the norms ``N``: ``w = v / sum(v)``, ``v = N^-1 C^+ 1``; for full rank this is
    TorchJD's ``v = G^+ n`` and the closed form of the paper's ``alpha = g_1 U^T (D
    U^T)^-1``. Weights are invariant to a common rescaling (``d`` is linear); the direction
    of ``d`` is invariant to per-task rescaling; permutation equivariant.

    Solved on the cosine matrix: the pseudo-inverse of ``G`` itself (TorchJD) or of
    its trace-normalised form loses the tasks with small gradients when the norms
    differ by orders of magnitude; ``C`` has a unit diagonal whatever they are.
    ``pinv`` cuts singular values below ``rcond`` (``1e-4``) times the largest.
    Zero gradients drop out. When ``sum(v)`` vanishes (e.g. opposite gradients)
    the weights are 0, as in TorchJD.

    Args:
      rcond: relative cut-off of the pseudo-inverse, ``1e-4``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`imtl_g_weights`.

    References:
      - Liu et al. (2021). "Towards Impartial Multi-task Learning"
    """
    check("rcond", rcond, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    return gramian_method(imtl_g_weights, name="imtl_g", num_tasks=num_tasks, rcond=rcond)
