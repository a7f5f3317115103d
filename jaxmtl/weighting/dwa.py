"""DWA: dynamic weight average."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import positive

__all__ = ["DWAState", "dwa"]


@method_state
class DWAState(NamedTuple):
    """State of :func:`dwa`."""

    history: jax.Array      # f32[2, T]: the mean losses of the two previous epochs
    epochs: jax.Array       # i32[]: completed epochs
    loss_sum: jax.Array     # f32[T]: the sum of the losses of the current epoch
    count: jax.Array        # i32[]: updates in the current epoch
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("dwa", "DWA", "loss", "Liu et al. 2019", needs_losses=True, needs_num_tasks=True, scale="linear",
          one_task_identity=True)
def dwa(temperature: float = 2.0, *, steps_per_epoch: int = 1,
        num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DWA: dynamic weight average.

    Liu et al. (2019). Update rule: with the mean losses of the two previous epochs, ``r_t =
    L_t(k-1) / L_t(k-2)`` and ``w = T softmax(r / temperature)``; ``w = 1`` until two epochs
    are complete.
    Args:
      temperature: ``2.0`` (paper).
      steps_per_epoch: averages the losses over each block of ``n`` updates (the
        paper's per-epoch variant); ``1`` (default) uses the previous two steps'
        losses (the per-step variant).
      num_tasks: the number of tasks (required: the loss window is state).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`DWAState`.

    References:
      - Liu et al. (2019). "End-to-End Multi-Task Learning with Attention"
    """
    check("temperature", temperature, lambda v: v > 0, "positive")
    check("steps_per_epoch", steps_per_epoch, lambda v: v >= 1, "a positive integer")
    t = task_count(num_tasks, "dwa", "its state holds a window of per-task losses")

    def init_fn(params):
        del params
        return DWAState(jnp.ones((2, t), jnp.float32), jnp.zeros((), jnp.int32),
                        jnp.zeros((t,), jnp.float32), jnp.zeros((), jnp.int32),
                        initial_weights(t, 1.0), no_skips())

    def weight_fn(gram, state, *, t, losses, **_):
        del gram
        hist = state.history
        ratio = positive(hist[1]) / positive(hist[0])
        w = jnp.where(state.epochs >= 2, t * jax.nn.softmax(ratio / as_float(temperature)), 1.0)
        total, count = state.loss_sum + losses, state.count + 1
        done = count >= steps_per_epoch
        return w, state._replace(
            history=jnp.where(done, jnp.stack([hist[1], total / count]), hist),
            epochs=state.epochs + done.astype(jnp.int32),
            loss_sum=jnp.where(done, 0.0, total), count=jnp.where(done, 0, count))

    return weighted_method(weight_fn, name="dwa", num_tasks=t, init_fn=init_fn,
                           uses_gramian=False, needs_losses=True)
