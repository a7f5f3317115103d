"""GradDrop: drop each coordinate's gradients of the minority sign, at random.

Chen et al. (2020), "Just Pick a Sign: Optimizing Deep Multitask Models with
Gradient Sign Dropout". Update rule, per coordinate: the sign purity
``P = 1/2 (1 + sum_t g_t / sum_t |g_t|)``, ``U ~ Uniform(0, 1)``; task ``t``'s
gradient is kept where ``(P > U and g_t > 0)`` or ``(P < U and g_t < 0)``;
``d = sum_t (leak_t + (1 - leak_t) mask_t) g_t``. ``leak`` (scalar or one per
task, default ``0.0``) keeps that fraction of every gradient.

The paper applies GradDrop to the gradients of a shared activation layer; like
TorchJD, jaxmtl applies it to whatever stacked gradients it receives (pass
representation gradients to reproduce the paper's placement). Coordinate-wise,
so it exposes no Gramian weighting and records no task weights. The PRNG key is
carried in the state (``seed``), split at every update.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl.gramian import num_tasks as _num_tasks
from jaxmtl.method import MethodState


def graddrop(leak: float | Sequence[float] = 0.0, *, seed: int = 0,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradDrop as an optax transformation (see the module docstring)."""
    leak_arr = np.atleast_1d(np.asarray(leak, np.float32))
    if leak_arr.ndim != 1 or np.any(leak_arr < 0) or np.any(leak_arr > 1):
        raise ValueError(f"leak must be in [0, 1] (a scalar or one per task), got {leak!r}")

    def init(params):
        del params
        return MethodState(jax.random.PRNGKey(seed), None)

    def update(task_grads, state, params=None, *, losses=None, **extra):
        t = _num_tasks(task_grads, params=params, losses=losses, expected=num_tasks)
        if leak_arr.size not in (1, t):
            raise ValueError(f"leak has {leak_arr.size} entries for {t} tasks")
        lk = jnp.broadcast_to(jnp.asarray(leak_arr), (t,))
        key, sub = jax.random.split(state.inner)
        leaves, treedef = jax.tree.flatten(task_grads)
        out = []
        for g, k in zip(leaves, jax.random.split(sub, len(leaves))):
            gf = g.astype(jnp.float32)
            total, mass = jnp.sum(gf, axis=0), jnp.sum(jnp.abs(gf), axis=0)
            purity = 0.5 * (1.0 + total / jnp.where(mass > 0, mass, 1.0))
            u = jax.random.uniform(k, purity.shape)
            keep = ((purity > u) & (gf > 0)) | ((purity < u) & (gf < 0))
            coef = lk.reshape((t,) + (1,) * (gf.ndim - 1))
            out.append(jnp.sum((coef + (1.0 - coef) * keep) * gf, axis=0).astype(g.dtype))
        return jax.tree.unflatten(treedef, out), MethodState(key, None)

    return optax.GradientTransformationExtraArgs(init, update)
