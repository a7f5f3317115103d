"""Optimisers as an experimental axis (Paper A): shared, sign-based and per-task.

* :func:`signum`: signSGD with momentum (Bernstein et al. 2018): ``-lr sign(m)``.
* :func:`per_task`: any optax transformation applied to every task's gradient
  separately (its state gets a leading task axis); input and output are
  stacked pytrees, so it goes *before* an MTL method in a chain.
* :func:`adatask`: AdaTask (Yang et al. 2023): a separate Adam moment pair per
  task on the shared parameters, then the method (EW by default), then the
  learning rate; task-specific parameters get ordinary Adam.
* :func:`mtl_io`: one complete optimiser per task on the shared parameters (each
  with its own learning rate and moments), combined by the method; with EW and
  Adam it coincides with AdaTask, with a non-linear method it does not.

Paper A (Elich et al.): Adam's update is invariant to a constant positive
scaling of a task's loss for parameters only that task touches (the heads),
not for shared ones; one Adam per task (AdaTask/MTL-IO) makes the shared
parameters invariant too.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramians import num_tasks as _num_tasks
from jaxmtl.masking import Mask
from jaxmtl.partitioning import partition
from jaxmtl.weighting.linear import linear


def signum(learning_rate: float, momentum: float = 0.9) -> optax.GradientTransformation:
    """signSGD with momentum: ``m <- momentum m + g``, update ``-lr sign(m)``."""
    return optax.chain(optax.trace(decay=momentum), optax.scale_by_sign(),
                       optax.scale_by_learning_rate(learning_rate))


def per_task(inner: optax.GradientTransformation, num_tasks: int) -> optax.GradientTransformation:
    """Applies ``inner`` to each task's slice of a stacked pytree, with one state per task."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")

    def init(params):
        state = inner.init(params)
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_tasks, *jnp.shape(x))), state)

    def update(task_grads, state, params=None):
        _num_tasks(task_grads, params=params, expected=num_tasks)
        return jax.vmap(inner.update, in_axes=(0, 0, None))(task_grads, state, params)

    return optax.GradientTransformation(init, update)


def adatask(learning_rate: float, num_tasks: int, *, method: optax.GradientTransformation | None = None,
            shared: Mask = None, task_of: Any = None, b1: float = 0.9, b2: float = 0.999,
            eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
    """AdaTask: per-task Adam moments, then ``method`` (default EW), then ``-lr``."""
    adam = lambda: optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
    core = optax.chain(per_task(adam(), num_tasks), method or linear(num_tasks=num_tasks))
    if shared is not None:
        core = partition(core, shared, others=adam(), task_of=task_of)
    return optax.chain(core, optax.scale_by_learning_rate(learning_rate))


def mtl_io(optimizer: Callable[[float], optax.GradientTransformation], learning_rate: float,
           num_tasks: int, *, method: optax.GradientTransformation | None = None,
           shared: Mask = None, task_of: Any = None) -> optax.GradientTransformationExtraArgs:
    """One ``optimizer(learning_rate)`` per task on the shared parameters, combined by
    ``method`` (default EW); task-specific parameters get one ``optimizer(learning_rate)``."""
    core = optax.chain(per_task(optimizer(learning_rate), num_tasks), method or linear(num_tasks=num_tasks))
    if shared is not None:
        core = partition(core, shared, others=optimizer(learning_rate), task_of=task_of)
    return core
