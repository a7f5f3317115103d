"""GradNorm: learn the weights so that weighted gradient norms follow training rates.

Chen et al. (2018), "GradNorm: Gradient Normalization for Adaptive Loss
Balancing in Deep Multitask Networks". Update rule (LibMTL's parametrisation):
``w = T softmax(xi)``; with the gradient norms ``n_t = |g_t|`` on the chosen
parameters, the inverse training rates ``r_t = (L_t / L_t(0)) / mean_s(L_s /
L_s(0))`` and the constant target ``c_t = mean_s(w_s n_s) r_t^alpha``, ``xi`` takes
one step of its own optimiser (default ``adam(lr)``, ``lr = 1e-3``) on
``sum_t |w_t n_t - c_t|``; ``d = sum_t w_t g_t`` with the weights before that
step. ``alpha = 1.5`` (paper). ``L(0)`` are the losses of the first update.

``layer``: which parameters define ``n_t``. ``None`` (default) uses every leaf the
method receives (all shared parameters under :func:`jaxmtl.partition`); a
shared mask (bool pytree/prefix or callable, see :mod:`jaxmtl.masking`) selects
e.g. the last shared layer, the paper's choice. Needs ``losses``;
``num_tasks`` required.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import require_num_tasks, task_grad_norms
from jaxmtl.masking import Mask, resolve_mask
from jaxmtl.method import weighted_method
from jaxmtl.weighting._losses import inner_optimizer, positive


def gradnorm(alpha: float = 1.5, lr: float = 1e-3, *, layer: Mask = None,
             optimizer: optax.GradientTransformation | None = None,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradNorm as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "gradnorm", "its state holds the learned weights")
    opt = inner_optimizer(optimizer, lr)

    def init_inner():
        xi = jnp.zeros((t,), jnp.float32)
        return {"logits": xi, "opt": opt.init(xi), "initial": jnp.ones((t,), jnp.float32), "started": jnp.array(False)}

    def weight_fn(g, inner, *, losses, grads, **_):
        if layer is None:
            norms = task_grad_norms(grads)
        else:
            mask = jax.tree.leaves(resolve_mask(layer, grads))
            chosen = [x for m, x in zip(mask, jax.tree.leaves(grads)) if m]
            if not chosen:
                raise ValueError("gradnorm: the layer mask selects no leaf")
            norms = task_grad_norms(chosen)
        norms = jnp.nan_to_num(norms, posinf=jnp.finfo(jnp.float32).max)
        initial = jnp.where(inner["started"], inner["initial"], positive(losses))
        rate = positive(losses) / initial
        rate = rate / jnp.mean(rate)
        xi = inner["logits"]
        w = t * jax.nn.softmax(xi)
        target = jax.lax.stop_gradient(jnp.mean(w * norms) * rate**alpha)
        grad = jax.grad(lambda z: jnp.sum(jnp.abs(t * jax.nn.softmax(z) * norms - target)))(xi)
        upd, opt_state = opt.update(grad, inner["opt"], xi)
        return w, {"logits": optax.apply_updates(xi, upd), "opt": opt_state, "initial": initial,
                   "started": jnp.array(True)}

    return weighted_method(weight_fn, name="gradnorm", num_tasks=t, init_inner=init_inner,
                           uses_gramian=False, needs_losses=True)
