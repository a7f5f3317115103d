"""UW-SO: soft optimal uncertainty weighting."""
from __future__ import annotations

import jax
import optax

from jaxmtl._checks import as_float, check
from jaxmtl.registry import register
from jaxmtl.weighting._losses import loss_weighting, positive

__all__ = ["uw_so"]


@register("uw_so", "UW-SO", "loss", "Kirchdorfer et al. 2024", needs_losses=True, scale="linear",
          one_task_identity=True)
def uw_so(temperature: float = 1.0, *, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UW-SO: soft optimal uncertainty weighting.

    Kirchdorfer et al. (2024). Update rule: the analytically optimal UW weights ``1/L_t``
    normalised by a softmax with temperature ``tau``: ``w = softmax((1 / L) / tau)``, ``d =
    sum_t w_t g_t`` (losses floored at 1e-12; the authors' code adds 1e-8). Needs
    ``losses``.
    Args:
      temperature: ``tau``, ``1.0`` (the authors' code default).
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Kirchdorfer et al. (2024). "Analytical Uncertainty-Based Loss Weighting in Multi-Task
        Learning"
    """
    check("temperature", temperature, lambda v: v > 0, "positive")
    return loss_weighting(lambda losses: jax.nn.softmax(1.0 / positive(losses) / as_float(temperature)),
                          name="uw_so", num_tasks=num_tasks)
