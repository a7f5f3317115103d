"""UW-SO: soft optimal uncertainty weighting.

Kirchdorfer et al. (2024), "Analytical Uncertainty-Based Loss Weighting in
Multi-Task Learning". Update rule: the analytically optimal UW weights ``1/L_t``
normalised by a softmax with temperature ``tau``:
``w = softmax((1 / L) / tau)``, ``d = sum_t w_t g_t``. Default ``temperature = 1.0``
(the authors' code default). Needs ``losses``.
"""
from __future__ import annotations

import jax
import optax

from jaxmtl.weighting._losses import loss_weighting, positive


def uw_so(temperature: float = 1.0, *, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UW-SO as an optax transformation (see the module docstring)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return loss_weighting(lambda losses: jax.nn.softmax(1.0 / positive(losses) / temperature),
                          name="uw_so", num_tasks=num_tasks)
