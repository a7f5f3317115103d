"""GLS: the geometric mean of the task losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.registry import register
from jaxmtl.weighting._losses import loss_weighting, positive

__all__ = ["geometric_mean"]


def geometric_mean_weights(losses: jax.Array) -> jax.Array:
    """``d/dL_t (prod_s L_s)^(1/T) = L / (T L_t)`` (losses floored at 1e-12)."""
    pos = positive(losses)
    gm = jnp.exp(jnp.mean(jnp.log(pos)))
    return gm / (pos.shape[0] * pos)


@register("geometric_mean", "GLS", "loss", "Chennupati et al. 2019", needs_losses=True, scale="linear",
          one_task_identity=True)
def geometric_mean(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GLS: the geometric mean of the task losses.

    Chennupati et al. (2019). Update rule: ``L = (prod_t L_t)^(1/T)``, so ``d = sum_t (L /
    (T L_t)) g_t`` (losses floored at 1e-12; the product is computed in log space). Needs
    ``losses``.
    Args:
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Chennupati et al. (2019). "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss
        Strategy for Multi-Task Learning"
    """
    return loss_weighting(geometric_mean_weights, name="geometric_mean", num_tasks=num_tasks)
