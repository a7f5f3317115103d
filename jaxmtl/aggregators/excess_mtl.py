"""ExcessMTL: weight the tasks by their estimated excess risk.

He et al. (2024), "Robust Multi-Task Learning with Excess Risks". Update rule
(the official code, also in LibMTL): accumulate ``H_t += g_t^2`` (AdaGrad-style
diagonal), estimate each task's excess risk ``r_t = g_t^T diag(1/sqrt(H_t + 1e-7)) g_t``;
the first step stores ``r_t`` as the reference ``r0_t`` and keeps the weights at
1; later steps update ``w_t <- w_t exp(eta r_t / r0_t)`` renormalised to sum to
``T``; ``d = sum_t w_t g_t``. ``robust_step_size = eta = 1e-2``.

Keeps ``H`` (``T`` times the parameters' memory) in the state, so ``num_tasks``
is required and ``init`` needs the parameters.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators._buffers import check_inputs, stacked_zeros
from jaxmtl.gramian import combine, require_num_tasks
from jaxmtl.method import MethodState


def excess_mtl(robust_step_size: float = 1e-2, *,
               num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ExcessMTL as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "excess_mtl", "its state accumulates squared gradients per task")

    def init(params):
        inner = {"h": stacked_zeros(params, t), "r0": jnp.ones((t,), jnp.float32), "started": jnp.array(False)}
        return MethodState(inner, jnp.ones((t,), jnp.float32))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        check_inputs("excess_mtl", state.inner["h"], task_grads, t, params=params, losses=losses,
                     needs_losses=False)
        h = jax.tree.map(lambda h, g: h + jnp.square(g.astype(jnp.float32)), state.inner["h"], task_grads)
        risk = sum(jnp.sum(jnp.reshape(jnp.square(g.astype(jnp.float32)) / jnp.sqrt(hh + 1e-7), (t, -1)), axis=1)
                   for g, hh in zip(jax.tree.leaves(task_grads), jax.tree.leaves(h)))
        risk = jnp.nan_to_num(risk, nan=0.0, posinf=jnp.finfo(jnp.float32).max)
        started = state.inner["started"]
        r0 = jnp.where(started, state.inner["r0"], risk)
        ratio = jnp.where(r0 > 0, risk / jnp.where(r0 > 0, r0, 1.0), 0.0)
        w = state.weights * jnp.exp(jnp.clip(robust_step_size * ratio, -50.0, 50.0))
        w = jnp.where(started, w / jnp.sum(w) * t, state.weights)
        inner = {"h": h, "r0": r0, "started": jnp.array(True)}
        return combine(w, task_grads), MethodState(inner, w)

    return optax.GradientTransformationExtraArgs(init, update)
