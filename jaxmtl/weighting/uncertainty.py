"""UW: homoscedastic uncertainty weighting with learned log-variances.

Kendall et al. (2018), "Multi-Task Learning Using Uncertainty to Weigh Losses
for Scene Geometry and Semantics". Update rule (LibMTL's form): with learned
``s_t = log sigma_t^2``, the total loss ``sum_t L_t / (2 exp(s_t)) + s_t / 2``, so
``w_t = exp(-s_t) / 2`` and ``d = sum_t w_t g_t``; ``s`` takes one step of its own
optimiser (default ``adam(lr)``, ``lr = 1e-3``; LibMTL trains ``s`` with the
model's optimiser) on ``dL/ds_t = 1/2 - L_t exp(-s_t) / 2``, whose root is
``exp(s_t) = L_t``. ``init`` is the initial ``s`` (0: weights 1/2). ``s``, the
optimiser state and the weights live in the optax state (``num_tasks`` required).
Needs ``losses``.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxmtl.gramian import require_num_tasks
from jaxmtl.method import weighted_method
from jaxmtl.weighting._losses import inner_optimizer


def uncertainty(init: float = 0.0, lr: float = 1e-3, *, optimizer: optax.GradientTransformation | None = None,
                num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UW as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "uncertainty", "its state holds one log-variance per task")
    opt = inner_optimizer(optimizer, lr)

    def init_inner():
        s = jnp.full((t,), init, jnp.float32)
        return {"log_var": s, "opt": opt.init(s)}

    def weight_fn(g, inner, *, losses, **_):
        s = inner["log_var"]
        w = 0.5 * jnp.exp(-s)
        grad = 0.5 - losses * w
        upd, opt_state = opt.update(grad, inner["opt"], s)
        return w, {"log_var": optax.apply_updates(s, upd), "opt": opt_state}

    return weighted_method(weight_fn, name="uncertainty", num_tasks=t, init_inner=init_inner,
                           uses_gramian=False, needs_losses=True)
