"""SDMGrad: stochastic direction-oriented multi-objective gradient descent.

Xiao et al. (2023), "Direction-oriented Multi-objective Learning: Simple and
Provable Stochastic Algorithms". Update rule (official code, as in LibMTL):
with two independent batches' Jacobians ``J_b, J_c``, ``M = J_b J_c^T`` (diagonal
clipped at 0) divided by the squared mean gradient norm, the weights
``w`` (simplex, kept in the state, starting at ``1/T``) take ``niter = 20``
projected SGD steps (lr 5, momentum 0.5, as the official code) on
``M w + lamda M 1/T``; the update uses a third batch ``J_a`` (``task_grads``):
``d = J_a^T (w + lamda/T) / (1 + lamda)``. ``lamda = 0.3`` pulls towards the
mean gradient.

Extra batches: pass ``extra_task_grads=(task_grads_b, task_grads_c)`` with the
stacked gradients of two more independent batches (a ``ValueError`` says so
when they are missing). ``num_tasks`` is required (the weights are state).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators._extra_batches import extra_cross_gramian
from jaxmtl.gramian import combine, num_tasks as _num_tasks, require_num_tasks
from jaxmtl.method import MethodState


def sdmgrad(lamda: float = 0.3, niter: int = 20, *, lr: float = 5.0, momentum: float = 0.5,
            num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """SDMGrad as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "sdmgrad", "its weights are state")

    def init(params):
        del params
        return MethodState((), jnp.full((t,), 1.0 / t, jnp.float32))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        _num_tasks(task_grads, params=params, losses=losses, expected=t)
        m, s = extra_cross_gramian(extra, task_grads, t, "sdmgrad")
        m = m.astype(jnp.float32)  # the weights stay float32 whatever the gradient dtype
        scale2 = jnp.mean(jnp.sqrt(jnp.maximum(jnp.diag(m), 0.0))) ** 2
        m = m / jnp.where(scale2 > 0, scale2, 1.0)
        pull = lamda * jnp.mean(m, axis=1)

        def sgd(carry, _):
            w, buf = carry
            buf = momentum * buf + (m @ w + pull)
            return (optax.projections.projection_simplex(w - lr * buf).astype(w.dtype), buf), None

        (w, _), _ = jax.lax.scan(sgd, (state.weights, jnp.zeros((t,), jnp.float32)), None, length=niter)
        weights = (w + lamda / t) / (1.0 + lamda)
        return combine(weights, task_grads), MethodState((), w)

    return optax.GradientTransformationExtraArgs(init, update)
