"""GLS: the geometric mean of the task losses.

Chennupati et al. (2019), "MultiNet++: Multi-Stream Feature Aggregation and
Geometric Loss Strategy for Multi-Task Learning". Update rule:
``L = (prod_t L_t)^(1/T)``, so ``d = sum_t (L / (T L_t)) g_t`` (losses floored at
1e-12; the product is computed in log space). Needs ``losses``.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxmtl.weighting._losses import loss_weighting, positive


def geometric_mean_weights(losses):
    pos = positive(losses)
    gm = jnp.exp(jnp.mean(jnp.log(pos)))
    return gm / (pos.shape[0] * pos)


def geometric_mean(*, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GLS as an optax transformation (see the module docstring)."""
    return loss_weighting(geometric_mean_weights, name="geometric_mean", num_tasks=num_tasks)
