"""STCH: smooth Tchebycheff scalarisation."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_vector
from jaxmtl.registry import register
from jaxmtl.weighting._losses import loss_weighting

__all__ = ["stch"]


@register("stch", "STCH", "loss", "Lin et al. 2024", needs_losses=True, scale="linear",
          one_task_identity=True)
def stch(mu: float = 1.0, *, pref: Sequence[float] | jax.Array | None = None,
         ideal: Sequence[float] | jax.Array | None = None,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """STCH: smooth Tchebycheff scalarisation.

    Lin et al. (2024). Update rule: ``L = mu log sum_t exp(p_t (L_t - z_t) / mu)``, so ``w =
    p * softmax(p (L - z) / mu)``, ``d = sum_t w_t g_t``; ``mu -> 0`` approaches the
    Tchebycheff (max) scalarisation, large ``mu`` the weighted sum. (LibMTL's variant
    applies it to log losses normalised by a nadir point after a warm-up, and multiplies the
    loss by ``T``; pass such losses, and ``pref = T``, to reproduce it.) Needs ``losses``.
    Args:
      mu: the smoothing, ``1.0`` (positive).
      pref: the preference ``p`` (default all ones).
      ideal: the ideal point ``z`` (default 0).
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Lin et al. (2024). "Smooth Tchebycheff Scalarization for Multi-Objective Optimization"
    """
    check("mu", mu, lambda v: v > 0, "positive")

    def weights(losses):
        t = losses.shape[0]
        p = jnp.ones((t,), jnp.float32) if pref is None else task_vector("pref", pref, t)
        z = jnp.zeros((t,), jnp.float32) if ideal is None else task_vector("ideal", ideal, t)
        return p * jax.nn.softmax(p * (losses - z) / as_float(mu))

    return loss_weighting(weights, name="stch", num_tasks=num_tasks)
