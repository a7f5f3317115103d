"""DWA: dynamic weight average.

Liu et al. (2019), "End-to-End Multi-Task Learning with Attention". Update
rule: with the mean losses of the two previous epochs, ``r_t = L_t(k-1) /
L_t(k-2)`` and ``w = T softmax(r / temperature)``; ``w = 1`` until two epochs
are complete. ``temperature = 2.0`` (paper). ``steps_per_epoch = n`` averages the
losses over each block of ``n`` updates (the paper's per-epoch variant);
``steps_per_epoch = 1`` (default) uses the previous two steps' losses (the
per-step variant). The window lives in the state (``num_tasks`` required).
Needs ``losses``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import require_num_tasks
from jaxmtl.method import weighted_method
from jaxmtl.weighting._losses import positive


def dwa(temperature: float = 2.0, steps_per_epoch: int = 1, *,
        num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DWA as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "dwa", "its state holds a window of per-task losses")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")

    def init_inner():
        return {"history": jnp.ones((2, t)), "epochs": jnp.zeros((), jnp.int32),
                "sum": jnp.zeros((t,)), "count": jnp.zeros((), jnp.int32)}

    def weight_fn(g, inner, *, losses, **_):
        hist = inner["history"]
        ratio = positive(hist[1]) / positive(hist[0])
        w = jnp.where(inner["epochs"] >= 2, t * jax.nn.softmax(ratio / temperature), 1.0)
        total, count = inner["sum"] + losses, inner["count"] + 1
        done = count >= steps_per_epoch
        new_hist = jnp.where(done, jnp.stack([hist[1], total / count]), hist)
        return w, {"history": new_hist, "epochs": inner["epochs"] + done.astype(jnp.int32),
                   "sum": jnp.where(done, 0.0, total), "count": jnp.where(done, 0, count)}

    return weighted_method(weight_fn, name="dwa", num_tasks=t, init_inner=init_inner,
                           uses_gramian=False, needs_losses=True)
