"""Nash-MTL: the Nash bargaining solution between the tasks."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, static_int, task_count
from jaxmtl.aggregators._fair import fair_solution, fair_weights
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["NashMTLState", "nash_mtl", "nash_mtl_weights"]


def nash_mtl_weights(gramian: jax.Array | ScaledGramian, *, max_norm: float | jax.Array = 1.0,
                     num_iters: int | jax.Array = 20, reg: float | jax.Array = 1e-6,
                     init: jax.Array | None = None) -> jax.Array:
    """Nash-MTL weights (norm clipping included) from a Gramian of any origin; see :func:`nash_mtl`.

    ``init``: positive weights to warm-start the solver from (e.g. the previous
    step's); only their direction matters.
    """
    check("max_norm", max_norm, lambda v: v >= 0, "non-negative")
    cf = cosine_form(gramian)
    one = jnp.ones((), jnp.float32)
    x0 = None
    if init is not None:
        # the same weights in the solver's scale-free variables z = s |g| w, rescaled so that
        # z^T C z = T, which the root satisfies (every utility g_t . d is 1 / w_t)
        z0 = jnp.asarray(init, jnp.float32) * cf.scale * cf.norms
        z0 = jnp.where(cf.alive, z0, 1.0)
        x0 = z0 * jnp.sqrt(cf.cos.shape[0] / jnp.maximum(z0 @ cf.cos @ z0, 1e-30))
    z = fair_solution(cf, one, reg, num_iters, x0)
    w = fair_weights(cf, z, one)
    zl = jnp.where(cf.alive, z, 0.0)
    norm = jnp.sqrt(jnp.maximum(zl @ cf.cos @ zl, 0.0))           # |J^T w|, scale-free
    max_norm = as_float(max_norm)
    clip = jnp.where((max_norm > 0) & (norm > max_norm), max_norm / jnp.maximum(norm, 1e-30), 1.0)
    return w * clip


@method_state
class NashMTLState(NamedTuple):
    """State of :func:`nash_mtl`."""

    step: jax.Array                 # i32[]: updates so far
    weights: jax.Array | None       # f32[T]: the last weights (warm start, reuse), None without num_tasks
    skipped: jax.Array              # i32[]: non-finite steps skipped


@register("nash_mtl", "Nash-MTL", "gramian", "Navon et al. 2022", weights=nash_mtl_weights,
          non_conflicting=True, scale="invariant", task_scale="invariant", full_rank_only=True)
def nash_mtl(max_norm: float = 1.0, *, update_weights_every: int = 1, warm_start: bool = False,
             num_iters: int = 20, reg: float = 1e-6,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Nash-MTL: the Nash bargaining solution between the tasks.

    Navon et al. (2022). Update rule: ``alpha > 0`` with ``G alpha = 1 / alpha`` (every
    task's utility ``g_t . d`` equals ``1 / alpha_t``), ``d = J^T alpha``; then, as the
    official code and LibMTL do on the shared parameters, ``d`` is clipped to norm
    ``max_norm``. Since ``|J^T alpha|^2 = alpha^T G alpha = T``, the unclipped update has
    norm ``sqrt(T)`` whatever the gradients' scales: Nash-MTL is invariant to a positive
    rescaling of each task's gradient (``alpha_t`` takes the inverse factor). Permutation
    invariant.

    Solver: with the cosine matrix ``C``, ``alpha_t = z_t / |g_t|`` where
    ``C z = 1 / z`` depends on the cosines only; damped Newton
    (:func:`jaxmtl.solvers.power_root`, ``num_iters`` iterations) on ``C + reg * I``.
    The invariance is thus exact, and norms that differ by orders of magnitude
    lose no accuracy. The official code solves a sequence of convex programs with
    cvxpy, warm-started from the previous step.

    Args:
      max_norm: clip the update to this norm, ``1.0`` (``0`` disables).
      update_weights_every: recompute the weights every ``k`` steps and reuse them
        in between (official option; ``1``). Needs ``num_tasks`` when above 1.
      warm_start: start the solver from the previous step's weights (needs
        ``num_tasks``); Newton from the default start already converges in
        ``num_iters = 20`` steps.
      num_iters: Newton iterations, ``20`` (the official ``optim_niter``).
      reg: ridge on the cosine matrix, ``1e-6``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`NashMTLState`;
      its public weighting is :func:`nash_mtl_weights`.

    References:
      - Navon et al. (2022). "Multi-Task Learning as a Bargaining Game"
    """
    check("max_norm", max_norm, lambda v: v >= 0, "non-negative")
    check("update_weights_every", update_weights_every, lambda v: v >= 1, "a positive integer")
    check("num_iters", num_iters, lambda v: v >= 1, "a positive integer")
    check("reg", reg, lambda v: v >= 0, "non-negative")
    every = static_int(update_weights_every)
    why = None
    if warm_start:
        why = "warm_start keeps the previous weights in the state"
    elif every is not None and every > 1:
        why = "update_weights_every > 1 reuses weights kept in the state"
    t = task_count(num_tasks, "nash_mtl", why)

    def init_fn(params):
        del params
        return NashMTLState(jnp.zeros((), jnp.int32), initial_weights(t), no_skips())

    def weight_fn(gram, state, **_):
        def fresh():
            init = None
            if warm_start:
                init = jnp.where(jnp.all(state.weights > 0), state.weights, 1.0)
            return nash_mtl_weights(gram, max_norm=max_norm, num_iters=num_iters, reg=reg, init=init)

        if state.weights is None:
            w = fresh()
        else:
            due = (state.step % update_weights_every == 0) | jnp.any(state.weights <= 0)
            w = jax.lax.cond(due, fresh, lambda: state.weights)
        return w, state._replace(step=state.step + 1)

    return weighted_method(weight_fn, name="nash_mtl", num_tasks=t, init_fn=init_fn)
