"""UW-O: uncertainty weighting at its analytical optimum."""
from __future__ import annotations

import optax

from jaxmtl.registry import register
from jaxmtl.weighting._losses import inverse_loss_weights, loss_weighting

__all__ = ["uw_optimal"]


@register("uw_optimal", "UW-O", "loss", "Elich et al. 2023", needs_losses=True, scale="linear",
          task_scale="invariant")
def uw_optimal(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UW-O: uncertainty weighting at its analytical optimum.

    Elich et al. (Paper A), after Kendall et al. (2018): for an L1 (Laplace)
    likelihood the optimal scale is ``sigma_t = L_t``, so the total loss is
    ``sum_t L_t / stopgrad(L_t)`` and ``d = sum_t g_t / L_t`` (losses floored at
    1e-12). Invariant to positive scaling of any task's loss, for every
    parameter (the gradient is the one of SI, :func:`jaxmtl.scale_invariant`).
    Needs ``losses``.

    Args:
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Elich, Kirchdorfer, Köhler & Schott (2023). "Examining Common Paradigms in Multi-Task Learning"
        (arXiv 2311.04698)
      - Kendall et al. (2018). "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry
        and Semantics"
    """
    return loss_weighting(inverse_loss_weights, name="uw_optimal", num_tasks=num_tasks)
