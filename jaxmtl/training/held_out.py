"""The train step of a method that learns from a held-out batch: Auto-Lambda as paper C runs it.

Auto-Lambda (Liu et al. 2022) moves its task weights ``lambda`` by the gradient of a
held-out loss after a virtual step, before each model step. Paper C's code
(``optimizers/auto_lambda.py``, ``train_multi_task.py``) runs it so, and this step does
the same on any Flax model of the generic stack (:mod:`jaxmtl.training.steps`):

1. the task losses and gradients of the training batch, as :func:`make_task_train_step`
   (one forward pass, the per-task gradients of the shared parameters);
2. the virtual SGD step ``theta' = theta - a (grad sum_t lambda_t L_t + wd theta)`` on
   every parameter (heads included), ``a`` the model's current learning rate;
3. ``d = grad L_val(theta')``, the held-out batch's summed task losses (every task is
   primary in multi-task learning);
4. the meta-gradient by the official central finite difference
   (:func:`jaxmtl.auto_lambda_fd_grad`: the training losses at ``theta +- e d``,
   ``e = 0.01 / |d|``), given to the method as ``meta_grad``; the method's ``lambda``
   steps, then weighs the model's update.

Dropout: the training batch's passes share the step's key; the held-out pass draws its
own. Batch statistics are updated once, by the training batch's first pass.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxmtl.data.tasks import Task
from jaxmtl.jacobians import value_and_jacobian
from jaxmtl.masking import Mask
from jaxmtl.protocol import find_method_state
from jaxmtl.training.steps import split_variables, training_losses
from jaxmtl.weighting.auto_lambda import auto_lambda_fd_grad


def make_held_out_train_step(apply_fn: Callable[..., Any], tx: optax.GradientTransformation,
                             tasks: Sequence[Task], *, shared: Mask = None, input_key: str = "image",
                             weight_decay: float = 0.0, chunk_size: int | str | None = "auto",
                             probe: Callable[[Any, Any], Any] | None = None):
    """A jitted ``step(variables, opt_state, batch, rng, val_batch, lr) -> (variables, opt_state,
    losses[, probe])`` for a ``tx`` holding :func:`jaxmtl.auto_lambda` (see the module's text).

    ``lr``: the model's learning rate at this step (the virtual step's, traced: schedules
    work); ``weight_decay``: the model's coupled L2 (the official virtual step includes it).
    ``tx``, ``shared``, ``probe`` as in :func:`jaxmtl.training.make_task_train_step`.
    """
    loss_fn = training_losses(apply_fn, tasks, input_key)
    grads_fn = value_and_jacobian(loss_fn, has_aux=True, shared=shared, chunk_size=chunk_size)

    @jax.jit
    def step(variables, opt_state, batch, rng, val_batch, lr):
        params, state = split_variables(variables)
        (losses, new_state), task_grads = grads_fn(params, state, batch, rng)
        method_state = find_method_state(opt_state)
        if method_state is None or not hasattr(method_state, "weights") or method_state.weights is None:
            raise ValueError("make_held_out_train_step: tx must hold a method with task weights "
                             "(jaxmtl.auto_lambda(num_tasks=T))")
        lam = jax.lax.stop_gradient(method_state.weights)
        mixed = jax.grad(lambda p: lam @ loss_fn(p, state, batch, rng)[0])(params)
        ahead = jax.tree.map(lambda p, g: p - lr * (g + weight_decay * p), params, mixed)
        val_key = jax.random.fold_in(rng, 1)
        val_grad = jax.grad(lambda p: jnp.sum(loss_fn(p, state, val_batch, val_key)[0]))(ahead)
        meta = auto_lambda_fd_grad(lambda p: loss_fn(p, state, batch, rng)[0], params, val_grad, virtual_lr=lr)
        updates, opt_state = tx.update(task_grads, opt_state, params, losses=losses, meta_grad=meta,
                                       value=jnp.sum(losses))
        out = {"params": optax.apply_updates(params, updates), **new_state}, opt_state, losses
        return out if probe is None else (*out, probe(task_grads, params))

    return step
