"""FAMO: fast adaptive multitask optimisation."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check, task_count, task_vector
from jaxmtl.gramians import num_tasks as _num_tasks
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["FAMOState", "famo"]


@method_state
class FAMOState(NamedTuple):
    """State of :func:`famo`."""

    logits: jax.Array       # f32[T]: xi, the task logits (z = softmax(xi))
    opt_state: Any          # the logits' optimiser state
    previous: jax.Array     # f32[T]: the losses passed at the previous update
    started: jax.Array      # bool[]: whether ``previous`` holds losses yet
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("famo", "FAMO", "loss", "Liu et al. 2023", needs_losses=True, needs_num_tasks=True, scale="linear",
          one_task_identity=True, optional_args=("prev_batch_losses",))
def famo(gamma: float = 1e-3, *, lr: float = 0.025, min_losses: jax.Array | None = None,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """FAMO: fast adaptive multitask optimisation.

    Liu et al. (2023). Update rule: ``z = softmax(xi)``, ``D_t = L_t - m_t`` (floored at
    1e-8; ``m`` the minimum losses, default 0), ``d = sum_t z_t / (c D_t) g_t`` with ``c =
    sum_t z_t / D_t`` (the gradient of ``sum_t z_t log D_t``, normalised). After each model
    step the logits take one step of their own optimiser, Adam(``lr``) with coupled L2 decay
    ``gamma``, *descending* on ``(dz/dxi)^T delta`` with ``delta_t = log D_t(before) - log
    D_t(after)``, the per-task decrease of the log loss on the same batch: a task whose log
    loss falls faster than the weighted average loses weight.

    FAMO needs the losses *after* the step. At update ``k + 1`` jaxmtl first
    updates the logits with ``before = L_k`` (the losses passed at update ``k``)
    and ``after`` =

    * the ``prev_batch_losses`` extra argument when given: the losses of update
      ``k``'s batch at the current parameters (one extra forward pass; exactly
      the official algorithm), or otherwise
    * the current batch's ``losses`` (no extra pass; the decrease is then
      measured across two batches, a noisier estimate: the documented deviation).

    Args:
      gamma: L2 decay of the logits, ``1e-3`` (the official scripts use 1e-3 on
        NYUv2, CelebA and QM9, 1e-2 on Cityscapes; Gama & Grassi grid {1e-2, 1e-3, 1e-4}).
      lr: Adam's learning rate for the logits, ``0.025`` (official).
      min_losses: the minimum losses ``m`` (default 0).
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`FAMOState`.

    References:
      - Liu et al. (2023). "FAMO: Fast Adaptive Multitask Optimization"
    """
    check("gamma", gamma, lambda v: v >= 0, "non-negative")
    check("lr", lr, lambda v: v > 0, "positive")
    t = task_count(num_tasks, "famo", "its state holds the task logits")

    def optimizer():
        return optax.chain(optax.add_decayed_weights(gamma), optax.adam(lr))

    def init_fn(params):
        del params
        xi = jnp.zeros((t,), jnp.float32)
        return FAMOState(xi, optimizer().init(xi), jnp.ones((t,), jnp.float32), jnp.array(False),
                         initial_weights(t), no_skips())

    def weight_fn(gram, state, *, t, losses, extra, **_):
        del gram
        m = jnp.zeros((t,), jnp.float32) if min_losses is None else task_vector("min_losses", min_losses, t)

        def gap(x):
            return jnp.maximum(x - m, 1e-8)

        after = extra.get("prev_batch_losses")
        if after is None:
            after = losses
        else:
            _num_tasks(jnp.zeros((t, 1)), losses=after)
            after = jnp.asarray(after, jnp.float32)
        xi = state.logits
        delta = jnp.log(gap(state.previous)) - jnp.log(gap(after))
        z = jax.nn.softmax(xi)
        grad = z * (delta - z @ delta)              # (dz/dxi)^T delta, descended by the optimiser
        upd, opt_state = optimizer().update(grad, state.opt_state, xi)
        started = state.started
        xi = jnp.where(started, optax.apply_updates(xi, upd), xi)
        opt_state = jax.tree.map(lambda new, old: jnp.where(started, new, old), opt_state, state.opt_state)
        ratio = jax.nn.softmax(xi) / gap(losses)
        w = ratio / jnp.sum(ratio)
        return w, state._replace(logits=xi, opt_state=opt_state, previous=losses, started=jnp.array(True))

    return weighted_method(weight_fn, name="famo", num_tasks=t, init_fn=init_fn,
                           uses_gramian=False, needs_losses=True)
