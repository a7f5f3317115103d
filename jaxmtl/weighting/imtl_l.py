"""IMTL-L: the loss-balancing half of Impartial MTL."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import task_count
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import inner_optimizer

__all__ = ["IMTLLState", "imtl_l"]


@method_state
class IMTLLState(NamedTuple):
    """State of :func:`imtl_l`."""

    log_scale: jax.Array    # f32[T]: s_t, the learned log-scales (w_t = exp(s_t))
    opt_state: Any          # their optimiser's state
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("imtl_l", "IMTL-L", "loss", "Liu et al. 2021", needs_losses=True, needs_num_tasks=True,
          scale="linear", one_task_identity=True)
def imtl_l(lr: float = 1e-3, *, optimizer: optax.GradientTransformation | None = None,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """IMTL-L: the loss-balancing half of Impartial MTL.

    Liu et al. (2021). Update rule: with learned scales ``s_t``, the total loss ``sum_t
    exp(s_t) L_t - s_t``, so ``w_t = exp(s_t)`` and ``d = sum_t w_t g_t``; ``s`` then takes
    one step of its own optimiser on ``exp(s_t) L_t - 1``, whose root makes every scaled
    loss equal to 1. ``s`` starts at 0.
    Args:
      lr: learning rate of the default optimiser ``adam(lr)``, ``1e-3``.
      optimizer: the optimiser of ``s`` (default ``adam(lr)``; static under
        ``optax.inject_hyperparams``).
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`IMTLLState`.

    References:
      - Liu et al. (2021). "Towards Impartial Multi-task Learning"
    """
    t = task_count(num_tasks, "imtl_l", "its state holds one learned scale per task")
    opt = inner_optimizer(optimizer, lr)

    def init_fn(params):
        del params
        s = jnp.full((t,), 0.0, jnp.float32)
        return IMTLLState(s, opt.init(s), initial_weights(t), no_skips())

    def weight_fn(gram, state, *, losses, **_):
        del gram
        s = state.log_scale
        w = jnp.exp(s)
        upd, opt_state = opt.update(w * losses - 1.0, state.opt_state, s)
        return w, state._replace(log_scale=optax.apply_updates(s, upd), opt_state=opt_state)

    return weighted_method(weight_fn, name="imtl_l", num_tasks=t, init_fn=init_fn,
                           uses_gramian=False, needs_losses=True)
