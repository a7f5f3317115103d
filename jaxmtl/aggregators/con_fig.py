"""ConFIG: the conflict-free direction, scaled by the sum of the projections."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["con_fig", "con_fig_weights"]


def con_fig_weights(gramian: jax.Array | ScaledGramian, *, rcond: float | jax.Array = 1e-4) -> jax.Array:
    """ConFIG weights from a Gramian of any origin; see :func:`con_fig`."""
    check("rcond", rcond, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    cf = cosine_form(gramian)
    y = jnp.linalg.pinv(cf.cos, rtol=rcond, hermitian=True) @ cf.alive.astype(jnp.float32)
    cy = cf.cos @ y
    norm2 = y @ cy                                   # |U^T y|^2
    along = jnp.sum(cf.norms * cy)                   # sum_t g_t . (U^T y), in units of the scale
    # |y| >= 1/T when some direction has a positive projection on every unit gradient; a
    # vanishing y (e.g. exactly opposite gradients) means there is none: d = 0
    ok = (jnp.sum(jnp.abs(y)) > 1e-3) & (norm2 > 1e-20) & jnp.isfinite(along)
    return jnp.where(ok, (along / jnp.where(ok, norm2, 1.0)) * cf.from_units(y), 0.0)


@register("con_fig", "ConFIG", "gramian", "Liu et al. 2024", weights=con_fig_weights, scale="linear",
          task_scale="direction", one_task_identity=True, full_rank_only=True)
def con_fig(*, rcond: float = 1e-4, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ConFIG: the conflict-free direction, scaled by the sum of the projections.

    Liu et al. (2024). Update rule: with unit gradients ``u_t``, the direction ``d_u = U^+
    1`` (the least-norm ``d`` with ``u_t . d = 1`` for every task), ``e = d_u / |d_u|``, and
    ``d = (sum_t g_t . e) e`` (the official default "projection length"). With the cosine
    matrix ``C``: ``y = C^+ 1`` gives ``d_u = U^T y`` and ``w = (sum_t |g_t| (C y)_t / y^T C
    y) y / |g_t|``.

    Tasks with zero gradient drop out; when no direction has a positive
    projection on every unit gradient (e.g. opposite gradients, ``U^+ 1``
    vanishes) the update is 0. Non-conflicting when the unit gradients are
    linearly independent; linear under scaling; the direction is invariant to
    per-task rescaling; permutation invariant. ``pinv`` cuts singular values of
    ``C`` below ``rcond`` (``1e-4``) times the largest.

    Args:
      rcond: relative cut-off of the pseudo-inverse, ``1e-4``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`con_fig_weights`.

    References:
      - Liu et al. (2024). "ConFIG: Towards Conflict-free Training of Physics Informed Neural
        Networks"
    """
    check("rcond", rcond, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    return gramian_method(con_fig_weights, name="con_fig", num_tasks=num_tasks, rcond=rcond)
