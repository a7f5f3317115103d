"""DB-MTL: dual balancing of loss scales (log losses) and gradient magnitudes.

Lin et al. (2023), "Dual-Balancing for Multi-Task Learning". Update rule at
step ``k``: the gradients of ``log L_t`` (``g_t / (L_t + 1e-8)``) are tracked by
``m_t <- lg_t + beta_k (m_t - lg_t)``, ``beta_k = beta / k^beta_sigma``; each
is rescaled to the largest norm: ``d = sum_t (max_s |m_s| / |m_t|) m_t``.
Defaults as LibMTL: ``beta = 0.9, beta_sigma = 0.5``. The norm floor is relative
(``1e-8 * max_s |m_s|``) instead of LibMTL's absolute 1e-8, so tiny gradients
are balanced too.

Needs ``losses``; keeps one tracked gradient per task in the state, so
``num_tasks`` is required and ``init`` needs the parameters. ``state.weights``
records ``max_s |m_s| / |m_t|`` (weights of the tracked gradients).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators._buffers import check_inputs, scale_rows, stacked_zeros
from jaxmtl.gramian import combine, require_num_tasks, task_grad_norms
from jaxmtl.method import MethodState


def db_mtl(beta: float = 0.9, beta_sigma: float = 0.5, *,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DB-MTL as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "db_mtl", "its state tracks one gradient per task")

    def init(params):
        inner = {"m": stacked_zeros(params, t), "step": jnp.zeros((), jnp.int32)}
        return MethodState(inner, jnp.ones((t,), jnp.float32))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        check_inputs("db_mtl", state.inner["m"], task_grads, t, params=params, losses=losses,
                     needs_losses=True)
        step = state.inner["step"] + 1
        b = beta / step.astype(jnp.float32) ** beta_sigma
        log_grads = scale_rows(1.0 / (jnp.abs(jnp.asarray(losses, jnp.float32)) + 1e-8), task_grads)
        m = jax.tree.map(lambda m, lg: lg + b * (m - lg), state.inner["m"], log_grads)
        norms = task_grad_norms(m)
        top = jnp.max(norms)
        w = jnp.where(top > 0, top / (norms + 1e-8 * top + 1e-30), 1.0)
        upd = jax.tree.map(lambda u, g: u.astype(g.dtype), combine(w, m), task_grads)
        return upd, MethodState({"m": m, "step": step}, w)

    return optax.GradientTransformationExtraArgs(init, update)
