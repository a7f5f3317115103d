"""FairGrad: alpha-fair resource allocation between the tasks."""
from __future__ import annotations

import jax
import optax

from jaxmtl._checks import as_float, check
from jaxmtl.aggregators._fair import fair_solution, fair_weights
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["fairgrad", "fairgrad_weights"]


def fairgrad_weights(gramian: jax.Array | ScaledGramian, *, alpha: float | jax.Array = 1.0,
                     num_iters: int | jax.Array = 20, reg: float | jax.Array = 1e-6) -> jax.Array:
    """FairGrad weights from a Gramian of any origin; see :func:`fairgrad`."""
    check("alpha", alpha, lambda v: v > 0, "positive")
    cf = cosine_form(gramian)
    p = 1.0 / as_float(alpha)
    return fair_weights(cf, fair_solution(cf, p, reg, num_iters), p)


@register("fairgrad", "FairGrad", "gramian", "Ban & Ji 2024", weights=fairgrad_weights, non_conflicting=True,
          scale="invariant", task_scale="invariant", full_rank_only=True)
def fairgrad(alpha: float = 1.0, *, num_iters: int = 20, reg: float = 1e-6,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """FairGrad: alpha-fair resource allocation between the tasks.

    Ban & Ji (2024). Update rule: ``w > 0`` with ``(G w)_t = w_t^(-1/alpha)`` (the alpha-
    fair optimality condition on the tasks' utilities ``g_t . d``), ``d = J^T w``. ``alpha =
    1`` is proportional fairness (Nash-MTL's condition, without its norm clipping); ``alpha
    -> inf`` approaches max-min fairness. ``|d|`` scales as ``s^(1 - 2/(1+p))`` (``p =
    1/alpha``) when the gradients scale by ``s``; at ``alpha = 1`` the update is invariant
    to a positive rescaling of each task's gradient. Permutation invariant.

    Solver: damped Newton (:func:`jaxmtl.solvers.power_root`, ``num_iters``
    iterations) on the well-scaled form ``w_t = |g_t|^(-2/(1+p)) z_t``, where the
    equation involves the cosine matrix plus ``reg * I`` and every row is of
    order one whatever the gradient norms; the official code uses scipy's
    ``least_squares`` from the uniform point.

    Args:
      alpha: the fairness parameter, ``1.0`` (positive).
      num_iters: Newton iterations, ``20``.
      reg: ridge on the cosine matrix, ``1e-6``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`fairgrad_weights`.

    References:
      - Ban & Ji (2024). "Fair Resource Allocation in Multi-Task Learning"
    """
    check("alpha", alpha, lambda v: v > 0, "positive")
    check("num_iters", num_iters, lambda v: v >= 1, "a positive integer")
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(fairgrad_weights, name="fairgrad", num_tasks=num_tasks, alpha=alpha,
                          num_iters=num_iters, reg=reg)
