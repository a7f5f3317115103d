"""UW: homoscedastic uncertainty weighting with learned log-variances."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import task_count, task_vector
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import inner_optimizer

__all__ = ["UncertaintyState", "uncertainty"]


@method_state
class UncertaintyState(NamedTuple):
    """State of :func:`uncertainty`."""

    log_var: jax.Array      # f32[T]: s_t = log sigma_t^2 (LibMTL's form) or eta_t = log sigma_t (``powers``)
    opt_state: Any          # their optimiser's state
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("uncertainty", "UW", "loss", "Kendall et al. 2018", needs_losses=True, needs_num_tasks=True,
          scale="linear")
def uncertainty(lr: float = 1e-3, *, init: float = 0.0, optimizer: optax.GradientTransformation | None = None,
                powers: jax.Array | None = None, divisors: jax.Array | None = None,
                num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UW: homoscedastic uncertainty weighting with learned log-variances.

    Kendall et al. (2018). Update rule (LibMTL's form): with learned ``s_t = log
    sigma_t^2``, the total loss ``sum_t L_t / (2 exp(s_t)) + s_t / 2``, so ``w_t = exp(-s_t)
    / 2`` and ``d = sum_t w_t g_t``; ``s`` then takes one step of its own optimiser on
    ``dL/ds_t = 1/2 - L_t exp(-s_t) / 2``, whose root is ``exp(s_t) = L_t``. LibMTL trains
    ``s`` (starting at ``-0.5``) with the model's own optimiser: pass ``init=-0.5`` and
    ``optimizer=`` the model's optimiser to reproduce it (Elich et al.'s setting).

    **Per-task form** (Kendall et al.'s own, as Gama & Grassi's code writes it): with
    ``powers`` ``p`` and ``divisors`` ``f`` the learned ``eta_t = log sigma_t`` and the
    total loss ``sum_t eta_t + L_t exp(-p_t eta_t) / f_t``, so ``w_t = exp(-p_t eta_t) / f_t``
    and ``dL/deta_t = 1 - p_t L_t w_t`` (root ``w_t = 1 / (p_t L_t)``): ``p = 2, f = 1`` for a
    likelihood (cross-entropy: ``L / sigma^2 + log sigma``), ``p = 2, f = 2`` for a
    squared error (``L / (2 sigma^2) + log sigma``), ``p = 1, f = 1`` for an L1 loss
    (``L / sigma + log sigma``). Gama & Grassi train ``eta`` (from 0) with the model's Adam.

    Args:
      lr: learning rate of the default optimiser ``adam(lr)``, ``1e-3``.
      init: the initial ``s`` (``0``: weights 1/2).
      optimizer: the optimiser of ``s`` (default ``adam(lr)``). Under
        ``optax.inject_hyperparams`` it is a static argument.
      powers: per-task ``p`` of the per-task form (``None``: LibMTL's form); needs ``divisors``.
      divisors: per-task ``f`` of the per-task form.
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`UncertaintyState`.

    References:
      - Kendall et al. (2018). "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
        Geometry and Semantics"
    """
    t = task_count(num_tasks, "uncertainty", "its state holds one log-variance per task")
    opt = inner_optimizer(optimizer, lr)
    if (powers is None) != (divisors is None):
        raise ValueError("uncertainty: pass both powers and divisors (the per-task form) or neither")
    if powers is not None:
        powers, divisors = task_vector("powers", powers, t), task_vector("divisors", divisors, t)

    def init_fn(params):
        del params
        s = jnp.full((t,), init, jnp.float32)
        return UncertaintyState(s, opt.init(s), initial_weights(t), no_skips())

    def weight_fn(gram, state, *, losses, **_):
        del gram
        s = state.log_var
        if powers is None:
            w = 0.5 * jnp.exp(-s)
            grad = 0.5 - losses * w
        else:
            w = jnp.exp(-powers * s) / divisors
            grad = 1.0 - powers * losses * w
        upd, opt_state = opt.update(grad, state.opt_state, s)
        return w, state._replace(log_var=optax.apply_updates(s, upd), opt_state=opt_state)

    return weighted_method(weight_fn, name="uncertainty", num_tasks=t, init_fn=init_fn,
                           uses_gramian=False, needs_losses=True)
