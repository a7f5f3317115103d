"""FAMO: fast adaptive multitask optimisation.

Liu et al. (2023), "FAMO: Fast Adaptive Multitask Optimization". Update rule:
``z = softmax(xi)``, ``D_t = L_t - m_t`` (floored at 1e-8; ``m`` the minimum losses,
default 0), ``d = sum_t z_t / (c D_t) g_t`` with ``c = sum_t z_t / D_t`` (the
gradient of ``sum_t z_t log D_t``, normalised). After each model step the logits
take one step of their own optimiser — Adam (``lr = 0.025``) with coupled L2
decay ``gamma = 1e-3`` (official defaults; Gama & Grassi grid {1e-2, 1e-3, 1e-4})
— on ``-(d z / d xi)^T delta``, ``delta_t = log D_t(before) - log D_t(after)``, the
per-task decrease of the log loss on the same batch.

Extra-argument interface: FAMO needs the losses *after* the step. At update
``k + 1`` jaxmtl first updates the logits with ``before = L_k`` (the losses
passed at update ``k``) and ``after`` =

* the ``prev_batch_losses`` extra argument when given: the losses of update
  ``k``'s batch at the current parameters (one extra forward pass; exactly the
  official algorithm), or otherwise
* the current batch's ``losses`` (no extra pass; the decrease is then measured
  across two batches, a noisier estimate — the documented deviation).

``num_tasks`` is required; the logits, their optimiser state and the previous
losses live in the state. Needs ``losses``.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import num_tasks as _num_tasks, require_num_tasks
from jaxmtl.method import weighted_method


def famo(gamma: float = 1e-3, lr: float = 0.025, *, min_losses: Sequence[float] | None = None,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """FAMO as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "famo", "its state holds the task logits")
    opt = optax.chain(optax.add_decayed_weights(gamma), optax.adam(lr))
    m = jnp.zeros((t,), jnp.float32) if min_losses is None else jnp.asarray(min_losses, jnp.float32)

    def gap(losses):
        return jnp.maximum(losses - m, 1e-8)

    def init_inner():
        xi = jnp.zeros((t,), jnp.float32)
        return {"logits": xi, "opt": opt.init(xi), "previous": jnp.ones((t,), jnp.float32), "started": jnp.array(False)}

    def weight_fn(g, inner, *, losses, extra, **_):
        after = extra.get("prev_batch_losses")
        if after is None:
            after = losses
        else:
            _num_tasks(jnp.zeros((t, 1)), losses=after)
            after = jnp.asarray(after, jnp.float32)
        xi = inner["logits"]
        delta = jnp.log(gap(inner["previous"])) - jnp.log(gap(after))
        z = jax.nn.softmax(xi)
        grad = -(z * (delta - z @ delta))          # -(dz/dxi)^T delta
        upd, opt_state = opt.update(grad, inner["opt"], xi)
        xi = jnp.where(inner["started"], optax.apply_updates(xi, upd), xi)
        opt_state = jax.tree.map(lambda new, old: jnp.where(inner["started"], new, old), opt_state, inner["opt"])
        z = jax.nn.softmax(xi)
        ratio = z / gap(losses)
        w = ratio / jnp.sum(ratio)
        return w, {"logits": xi, "opt": opt_state, "previous": losses, "started": jnp.array(True)}

    return weighted_method(weight_fn, name="famo", num_tasks=t, init_inner=init_inner,
                           uses_gramian=False, needs_losses=True)
