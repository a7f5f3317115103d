"""MoCo: multi-objective gradient with bias correction by tracking.

Fernando et al. (2023), "Mitigating Gradient Bias in Multi-objective Learning:
A Provably Convergent Approach". Update rule at step ``k`` (LibMTL's form):
each task gradient is rescaled to norm ``L_t`` (``h_t = L_t g_t / (|g_t| + 1e-8)``),
tracked by ``y_t <- y_t - beta_k (y_t - h_t)`` with ``beta_k = beta / k^beta_sigma``;
the weights follow ``lambda <- softmax(lambda - gamma_k (Y Y^T + rho I) lambda)``,
``gamma_k = gamma / k^gamma_sigma``; ``d = Y^T lambda``. Defaults (LibMTL):
``beta = 0.5, beta_sigma = 0.5, gamma = 0.1, gamma_sigma = 0.5, rho = 0``.

Needs ``losses``; keeps the ``T`` tracked gradients in the state (``T`` times the
parameters' memory), so ``num_tasks`` is required and ``init`` needs the
parameters. ``state.weights`` records ``lambda`` (the weights of ``Y``, not of
the current Jacobian).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators._buffers import check_inputs, scale_rows, stacked_zeros
from jaxmtl.gramian import (combine, require_num_tasks, scaled_gramian,
                            task_grad_norms)
from jaxmtl.method import MethodState


def moco(beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5,
         rho: float = 0.0, *, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MoCo as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "moco", "its state tracks one gradient per task")

    def init(params):
        inner = {"y": stacked_zeros(params, t), "step": jnp.zeros((), jnp.int32)}
        return MethodState(inner, jnp.full((t,), 1.0 / t, jnp.float32))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        check_inputs("moco", state.inner["y"], task_grads, t, params=params, losses=losses,
                     needs_losses=True)
        step = state.inner["step"] + 1
        k = step.astype(jnp.float32)
        norms = task_grad_norms(task_grads)
        h = scale_rows(jnp.asarray(losses, jnp.float32) / (norms + 1e-8), task_grads)
        b = beta / k**beta_sigma
        y = jax.tree.map(lambda y, h: y - b * (y - h), state.inner["y"], h)
        gy, s = scaled_gramian(y)
        s2 = jnp.minimum(s**2, jnp.finfo(jnp.float32).max)  # no 0 * inf for losses near 1e30
        grad = jnp.clip((gy @ state.weights) * s2 + rho * state.weights, -1e30, 1e30)
        lam = jax.nn.softmax(state.weights - gamma / k**gamma_sigma * grad)
        upd = jax.tree.map(lambda u, g: u.astype(g.dtype), combine(lam, y), task_grads)
        return upd, MethodState({"y": y, "step": step}, lam)

    return optax.GradientTransformationExtraArgs(init, update)
