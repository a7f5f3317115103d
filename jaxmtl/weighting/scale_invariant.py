"""SI: the sum of log losses (scale-invariant loss)."""
from __future__ import annotations

import optax

from jaxmtl.registry import register
from jaxmtl.weighting._losses import inverse_loss_weights, loss_weighting

__all__ = ["scale_invariant"]


@register("scale_invariant", "SI", "loss", "Navon et al. 2022; Gama & Grassi 2025", needs_losses=True,
          scale="linear", task_scale="invariant")
def scale_invariant(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """SI: the sum of log losses.

    Listed as "SI" by Gama & Grassi (2025) (after Navon et al. 2022's baseline).
    Update rule: ``L = sum_t log L_t``, so ``d = sum_t g_t / L_t`` (losses floored
    at 1e-12). Multiplying a task's loss by ``a > 0`` multiplies its gradient by
    ``a`` and its weight by ``1/a``: the update is invariant to positive loss
    scaling, for every parameter. Needs ``losses``.

    Args:
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Navon et al. (2022). "Multi-Task Learning as a Bargaining Game"
      - Gama & Grassi (2025). "Uniform Loss vs. Specialized Optimization: A Comparative Analysis in
        Multi-Task Learning" (arXiv 2505.10347)
    """
    return loss_weighting(inverse_loss_weights, name="scale_invariant", num_tasks=num_tasks)
