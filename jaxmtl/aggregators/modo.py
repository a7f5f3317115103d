"""MoDo: multi-objective gradient with double sampling.

Chen et al. (2023), "Three-Way Trade-Off in Multi-Objective Learning:
Optimization, Generalization and Conflict-Avoidance". Update rule (official
code, as in LibMTL): with two independent batches' Jacobians ``J_b, J_c``, the
weights (simplex, in the state, starting at ``1/T``) take one projected step
``lambda <- P_simplex(lambda - gamma (J_b J_c^T lambda + rho lambda))``; the update
uses a third batch ``J_a`` (``task_grads``): ``d = J_a^T lambda``. Defaults
``gamma = 1e-3``, ``rho = 0.1`` (LibMTL). ``J_b J_c^T`` is an unbiased estimate of
``G`` (double sampling), which is the point of the method; it is not
normalised, so ``gamma`` depends on the gradient scale.

Extra batches: pass ``extra_task_grads=(task_grads_b, task_grads_c)``.
``num_tasks`` is required (the weights are state). LibMTL also divides the
heads' gradients by 3 (it sums three backward passes); jaxmtl leaves the
heads to :func:`jaxmtl.partition`.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxmtl.aggregators._extra_batches import extra_cross_gramian
from jaxmtl.gramian import combine, num_tasks as _num_tasks, require_num_tasks
from jaxmtl.method import MethodState


def modo(gamma: float = 1e-3, rho: float = 0.1, *,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MoDo as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "modo", "its weights are state")

    def init(params):
        del params
        return MethodState((), jnp.full((t,), 1.0 / t, jnp.float32))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        _num_tasks(task_grads, params=params, losses=losses, expected=t)
        m, s = extra_cross_gramian(extra, task_grads, t, "modo")
        m = m.astype(jnp.float32)  # the weights stay float32 whatever the gradient dtype
        lam = state.weights
        grad = jnp.clip((m @ lam) * s**2 + rho * lam, -1e30, 1e30)
        lam = optax.projections.projection_simplex(lam - gamma * grad).astype(jnp.float32)
        return combine(lam, task_grads), MethodState((), lam)

    return optax.GradientTransformationExtraArgs(init, update)
