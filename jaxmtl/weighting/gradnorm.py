"""GradNorm: learn the weights so that weighted gradient norms follow training rates."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.gramians import task_grad_norms
from jaxmtl.masking import Mask, resolve_mask
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import inner_optimizer, into_window, positive

__all__ = ["GradNormState", "gradnorm"]


@method_state
class GradNormState(NamedTuple):
    """State of :func:`gradnorm`."""

    logits: jax.Array       # f32[T]: xi, with w = T softmax(xi)
    opt_state: Any          # the logits' optimiser state
    initial: jax.Array      # f32[T]: L(0), the losses of the first update
    started: jax.Array      # bool[]: whether ``initial`` is set
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("gradnorm", "GradNorm", "loss", "Chen et al. 2018", needs_losses=True, needs_num_tasks=True,
          scale="linear", one_task_identity=True)
def gradnorm(alpha: float = 1.5, *, lr: float = 1e-3, layer: Mask = None,
             optimizer: optax.GradientTransformation | None = None,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradNorm: learn the weights so that weighted gradient norms follow training rates.

    Chen et al. (2018). Update rule (LibMTL's parametrisation): ``w = T softmax(xi)``; with
    the gradient norms ``n_t = |g_t|`` on the chosen parameters, the inverse training rates
    ``r_t = (L_t / L_t(0)) / mean_s(L_s / L_s(0))`` and the constant target ``c_t =
    mean_s(w_s n_s) r_t^alpha``, ``xi`` takes one step of its own optimiser on ``sum_t |w_t
    n_t - c_t|``; ``d = sum_t w_t g_t`` with the weights before that step. ``L(0)`` are the
    losses of the first update (LibMTL takes the first epoch's mean losses and keeps the
    weights at 1 during that epoch; the paper updates ``w`` directly and renormalises). The
    objective is linear in the norms: when they lie outside ``[2^-40, 2^40]`` they are
    divided by a power of two first (Adam's step is unchanged up to its ``eps``), so its
    square stays finite for gradients up to float32's largest.
    Args:
      alpha: the restoring-force exponent, ``1.5`` (paper).
      lr: learning rate of the default optimiser ``adam(lr)``, ``1e-3``.
      layer: which parameters define ``n_t``: ``None`` (default) uses every leaf
        the method receives (all shared parameters under :func:`jaxmtl.partition`);
        a shared mask (bool pytree/prefix or callable, see :mod:`jaxmtl.masking`)
        selects e.g. the last shared layer, the paper's choice. Under
        ``optax.inject_hyperparams`` pass a callable mask in ``static_args``.
      optimizer: the optimiser of ``xi`` (default ``adam(lr)``).
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`GradNormState`.

    References:
      - Chen et al. (2018). "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
        Multitask Networks"
    """
    check("alpha", alpha, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "gradnorm", "its state holds the learned weights")
    opt = inner_optimizer(optimizer, lr)

    def init_fn(params):
        del params
        xi = jnp.zeros((t,), jnp.float32)
        return GradNormState(xi, opt.init(xi), jnp.ones((t,), jnp.float32), jnp.array(False),
                             initial_weights(t, 1.0), no_skips())

    def weight_fn(gram, state, *, t, losses, grads, **_):
        del gram
        if layer is None:
            norms = task_grad_norms(grads)
        else:
            mask = jax.tree.leaves(resolve_mask(layer, grads))
            chosen = [x for m, x in zip(mask, jax.tree.leaves(grads)) if m]
            if not chosen:
                raise ValueError("gradnorm: the layer mask selects no leaf")
            norms = task_grad_norms(chosen)
        # the objective is linear in the norms: the inner optimiser gets them within a window of
        # magnitudes it can square (Adam's step does not change, up to its eps)
        norms = into_window(jnp.minimum(norms, jnp.finfo(jnp.float32).max))
        initial = jnp.where(state.started, state.initial, positive(losses))
        rate = positive(losses) / initial
        rate = rate / jnp.mean(rate)
        xi = state.logits
        w = t * jax.nn.softmax(xi)
        target = jax.lax.stop_gradient(jnp.mean(w * norms) * rate ** as_float(alpha))
        grad = jax.grad(lambda z: jnp.sum(jnp.abs(t * jax.nn.softmax(z) * norms - target)))(xi)
        upd, opt_state = opt.update(grad, state.opt_state, xi)
        return w, state._replace(logits=optax.apply_updates(xi, upd), opt_state=opt_state,
                                 initial=initial, started=jnp.array(True))

    return weighted_method(weight_fn, name="gradnorm", num_tasks=t, init_fn=init_fn,
                           uses_gramian=False, needs_losses=True)
