"""MoDo: multi-objective gradient with double sampling."""
from __future__ import annotations

import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators._extra_batches import extra_cross_gramian
from jaxmtl.gramians import combine
from jaxmtl.protocol import WeightsState, initial_weights, method, no_skips
from jaxmtl.registry import register
from jaxmtl.solvers import project_simplex

__all__ = ["modo"]


@register("modo", "MoDo", "gradient", "Chen et al. 2023", needs_num_tasks=True, extra_batches=2)
def modo(gamma: float = 1e-3, *, rho: float = 0.1,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MoDo: multi-objective gradient with double sampling.

    Chen et al. (2023). Update rule (official code, as in LibMTL): with two independent
    batches' Jacobians ``J_b, J_c``, the weights (simplex, in the state, starting at
    ``1/T``) take one projected step ``lambda <- P_simplex(lambda - gamma (J_b J_c^T lambda
    + rho lambda))``; the update uses a third batch ``J_a`` (``task_grads``): ``d = J_a^T
    lambda``. ``J_b J_c^T`` is an unbiased estimate of ``G`` (double sampling), the point of
    the method; it is not normalised, so ``gamma`` depends on the gradient scale. LibMTL
    also divides the heads' gradients by 3 (it sums three backward passes); jaxmtl leaves
    the heads to :func:`jaxmtl.partition`.

    Extra batches: pass ``extra_task_grads=(task_grads_b, task_grads_c)``.

    Args:
      gamma: step size of the weights, ``1e-3``.
      rho: ridge, ``0.1`` (LibMTL's defaults).
      num_tasks: the number of tasks (required: the weights are state).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`jaxmtl.protocol.WeightsState`.

    References:
      - Chen et al. (2023). "Three-Way Trade-Off in Multi-Objective Learning: Optimization,
        Generalization and Conflict-Avoidance"
    """
    check("gamma", gamma, lambda v: v >= 0, "non-negative")
    check("rho", rho, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "modo", "its weights are state")

    def init_fn(params):
        del params
        return WeightsState(initial_weights(t), no_skips())

    def update_fn(task_grads, state, *, t, extra, **_):
        m, s = extra_cross_gramian(extra, t, "modo")
        lam = state.weights
        grad = jnp.clip((m @ lam) * s**2 + as_float(rho) * lam, -1e30, 1e30)
        lam = project_simplex(lam - as_float(gamma) * grad)
        return combine(lam, task_grads), state._replace(weights=lam)

    return method(update_fn, init_fn, name="modo", num_tasks=t)
