"""IMTL-L: the loss-balancing half of Impartial MTL.

Liu et al. (2021), "Towards Impartial Multi-task Learning". Update rule: with
learned scales ``s_t``, the total loss ``sum_t exp(s_t) L_t - s_t``, so
``w_t = exp(s_t)`` and ``d = sum_t w_t g_t``; ``s`` takes one step of its own
optimiser (default ``adam(lr)``, ``lr = 1e-3``) on ``exp(s_t) L_t - 1``, whose root
makes every scaled loss equal to 1. ``s`` starts at 0 and lives in the state
(``num_tasks`` required). Needs ``losses``.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxmtl.gramian import require_num_tasks
from jaxmtl.method import weighted_method
from jaxmtl.weighting._losses import inner_optimizer


def imtl_l(lr: float = 1e-3, *, optimizer: optax.GradientTransformation | None = None,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """IMTL-L as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "imtl_l", "its state holds one learned scale per task")
    opt = inner_optimizer(optimizer, lr)

    def init_inner():
        s = jnp.zeros((t,), jnp.float32)
        return {"scale": s, "opt": opt.init(s)}

    def weight_fn(g, inner, *, losses, **_):
        s = inner["scale"]
        w = jnp.exp(s)
        upd, opt_state = opt.update(w * losses - 1.0, inner["opt"], s)
        return w, {"scale": optax.apply_updates(s, upd), "opt": opt_state}

    return weighted_method(weight_fn, name="imtl_l", num_tasks=t, init_inner=init_inner,
                           uses_gramian=False, needs_losses=True)
