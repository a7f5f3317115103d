"""SI: the sum of log losses (scale-invariant loss).

Listed as "SI" by Gama & Grassi (2025) (after Navon et al. 2022's baseline).
Update rule: ``L = sum_t log L_t``, so ``d = sum_t g_t / L_t`` (weights ``1/L_t``,
losses floored at 1e-12). Multiplying a task's loss by ``a > 0`` multiplies its
gradient by ``a`` and its weight by ``1/a``: the update is invariant to
positive loss scaling, for every parameter. Needs ``losses``.
"""
from __future__ import annotations

import optax

from jaxmtl.weighting._losses import loss_weighting, positive


def inverse_loss_weights(losses):
    """``1 / L_t``, the weights of the sum of log losses."""
    return 1.0 / positive(losses)


def scale_invariant(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """SI as an optax transformation (see the module docstring)."""
    return loss_weighting(inverse_loss_weights, name="scale_invariant", num_tasks=num_tasks)
