"""IMTL: IMTL-L's learned loss scales with IMTL-G's equal projections."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check, task_count
from jaxmtl.aggregators.imtl_g import imtl_g_weights
from jaxmtl.gramians import ScaledGramian, as_scaled
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register
from jaxmtl.weighting._losses import inner_optimizer

__all__ = ["IMTLState", "imtl", "imtl_weights"]


def imtl_weights(gramian: jax.Array | ScaledGramian, *, log_scale: jax.Array | None = None,
                 rcond: float | jax.Array = 1e-4) -> jax.Array:
    """IMTL weights on the raw task gradients (or losses) from a Gramian of any origin and
    IMTL-L's log-scales ``s`` (``None``: 0); see :func:`imtl`.

    ``w = exp(s) * imtl_g_weights(E G E)`` with ``E = diag(exp(s))``: IMTL-G on the
    gradients of the scaled losses ``exp(s_t) L_t``, applied to them.
    """
    if log_scale is None:
        return imtl_g_weights(gramian, rcond=rcond)
    g, scale = as_scaled(gramian)
    e = jnp.exp(jnp.asarray(log_scale, jnp.float32))
    top_e = jnp.max(e)
    c = e / top_e
    g = g * c[:, None] * c[None, :]
    top = jnp.max(jnp.diag(g))
    ok = jnp.isfinite(top) & (top > 0)
    top = jnp.where(ok, top, 1.0)
    scaled = ScaledGramian(jnp.where(ok, g / top, 0.0), scale * top_e * jnp.sqrt(top))
    return e * imtl_g_weights(scaled, rcond=rcond)


@method_state
class IMTLState(NamedTuple):
    """State of :func:`imtl`."""

    log_scale: jax.Array    # f32[T]: s_t, IMTL-L's learned log-scales
    opt_state: Any          # their optimiser's state
    weights: jax.Array      # f32[T]: the last weights (on the raw gradients)
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("imtl", "IMTL", "gramian", "Liu et al. 2021", weights=imtl_weights, needs_losses=True,
          needs_num_tasks=True, scale="linear", task_scale="direction", one_task_identity=True,
          full_rank_only=True)
def imtl(lr: float = 1e-3, *, rcond: float = 1e-4, optimizer: optax.GradientTransformation | None = None,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """IMTL: IMTL-L's learned loss scales with IMTL-G's equal projections (the hybrid).

    Liu et al. (2021), the full method as Gama & Grassi (2025) run it. Update rule: IMTL-L
    scales task ``t``'s loss to ``exp(s_t) L_t - s_t``; IMTL-G (:func:`jaxmtl.imtl_g`) then
    weights the gradients of the scaled losses, ``h_t = exp(s_t) g_t``, by ``alpha``
    (``sum(alpha) = 1``, equal projections of ``d`` on every unit gradient):

        d = sum_t alpha_t h_t = sum_t w_t g_t,      w_t = alpha_t exp(s_t),

    and ``s`` takes one step of its own optimiser (default Adam(``lr``); Gama &
    Grassi use Adam at the model's learning rate) on ``exp(s_t) L_t - 1``, as in
    :func:`jaxmtl.imtl_l`. ``s`` starts at 0, so the first update is IMTL-G's.
    ``d``'s direction is IMTL-G's (invariant to per-task rescaling); ``s`` only sets
    its length.

    **On the shared representation** (the paper's and Gama & Grassi's IMTL, like
    MGDA-UB): compute ``alpha`` from the Gramian of the gradients with respect to
    the shared features ``z`` and pass it as the ``gramian=`` extra argument::

        rep_gram = jaxmtl.representation_gramian(head_losses)    # head_losses(z, batch) -> f32[T]
        _, g_rep = rep_gram(z, batch)
        updates, state = tx.update(task_grads, state, params, losses=losses, gramian=g_rep)

    ``task_grads`` are the shared parameters' per-task gradients of the raw losses
    (:func:`jaxmtl.value_and_jacobian` with ``shared=``, under :func:`jaxmtl.partition`);
    the update is ``sum_t w_t g_t``, what Gama & Grassi's one backward pass of
    ``sum_t alpha_t exp(s_t) L_t`` gives the encoder. The weights use the raw-loss
    Gramian: scaling by ``exp(s)`` happens inside. Their code gives head ``t`` the
    gradient of ``exp(s_t) L_t``; under :func:`jaxmtl.partition` (no ``task_of``)
    heads get their plain gradient (multiply by ``exp(state.log_scale)`` to match).

    Args:
      lr: learning rate of the default optimiser of ``s``, ``adam(lr)``, ``1e-3``.
      rcond: IMTL-G's relative cut-off of the pseudo-inverse, ``1e-4``.
      optimizer: the optimiser of ``s`` (default ``adam(lr)``; static under
        ``optax.inject_hyperparams``).
      num_tasks: the number of tasks (required: the state holds the log-scales).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`IMTLState`; its
      public weighting is :func:`imtl_weights`. Needs ``losses``.

    References:
      - Liu et al. (2021). "Towards Impartial Multi-task Learning"
    """
    check("rcond", rcond, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    t = task_count(num_tasks, "imtl", "its state holds one learned loss scale per task")
    opt = inner_optimizer(optimizer, lr)

    def init_fn(params):
        del params
        s = jnp.zeros((t,), jnp.float32)
        return IMTLState(s, opt.init(s), initial_weights(t), no_skips())

    def weight_fn(gram, state, *, losses, **_):
        s = state.log_scale
        w = imtl_weights(gram, log_scale=s, rcond=rcond)
        upd, opt_state = opt.update(jnp.exp(s) * losses - 1.0, state.opt_state, s)
        return w, state._replace(log_scale=optax.apply_updates(s, upd), opt_state=opt_state)

    return weighted_method(weight_fn, name="imtl", num_tasks=t, init_fn=init_fn, needs_losses=True)
