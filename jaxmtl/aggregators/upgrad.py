"""UPGrad: the average of the task gradients, each projected onto the dual cone of all."""
from __future__ import annotations

import jax
import optax

from jaxmtl._checks import check
from jaxmtl.aggregators._dual_cone import preference, project_each
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["upgrad", "upgrad_weights"]


def upgrad_weights(gramian: jax.Array | ScaledGramian, pref: jax.Array | None = None, *,
                   reg: float | jax.Array = 1e-4) -> jax.Array:
    """UPGrad weights from a Gramian of any origin; see :func:`upgrad`."""
    cf = cosine_form(gramian)
    p = preference(pref, cf.cos.shape[0])
    return (p * cf.norms) @ project_each(cf, reg)


@register("upgrad", "UPGrad", "gramian", "Quinton & Rey 2024", weights=upgrad_weights, non_conflicting=True,
          scale="linear", one_task_identity=True)
def upgrad(pref: jax.Array | None = None, *, reg: float = 1e-4,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UPGrad: each task gradient projected onto the dual cone of all, then summed.

    Quinton & Rey (2024) (TorchJD). Update rule: for each task ``i`` project ``p_i g_i``
    onto the dual cone ``{d : J d >= 0}``; ``d`` is the sum of the projections. In weight
    space, with the Gramian ``G``:

        w_i = argmin_{w >= p_i e_i} w^T G w,     w = sum_i w_i,     d = J^T w.

    Each projection is non-conflicting, so ``J d >= 0``; with the ridge,
    ``(J d)_t >= -reg * |g_t|^2 * w_t`` (from the QPs' KKT conditions). ``d`` is
    linear in a common positive rescaling of the gradients and equivariant to
    permuting the tasks; ``d = 0`` at Pareto-stationary points where the
    projections vanish.

    Solver: the projection is homogeneous, so each one is solved for the *unit*
    gradient ``u_i`` in the variables ``v = diag(|g|) w``, where the QP's matrix is
    the cosine matrix plus ``reg * I``, with the exact active-set solver
    :func:`jaxmtl.solvers.nonneg_qp` (all ``T`` QPs batched by ``vmap``). Every
    task's projection is thus computed at its own scale: gradient norms that
    differ by many orders of magnitude keep each task non-conflicting. (TorchJD
    regularises the trace-normalised Gramian with ``reg * I`` instead, which
    drowns the tasks whose squared norm is below ``reg`` times the trace, and
    solves the QPs with quadprog.)

    Args:
      pref: per-task preference weights ``p`` (default ``1/T`` each, TorchJD's mean).
      reg: ridge on the cosine matrix, ``1e-4``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`upgrad_weights`.

    References:
      - Quinton & Rey (2024). "Jacobian Descent for Multi-Objective Optimization"
    """
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(upgrad_weights, name="upgrad", num_tasks=num_tasks, pref=pref, reg=reg)
