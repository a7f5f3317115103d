"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""
from __future__ import annotations

import jax
import optax

from jaxmtl._checks import check
from jaxmtl.aggregators._dual_cone import preference, project
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["dualproj", "dualproj_weights"]


def dualproj_weights(gramian: jax.Array | ScaledGramian, pref: jax.Array | None = None, *,
                     reg: float | jax.Array = 1e-4) -> jax.Array:
    """DualProj weights from a Gramian of any origin; see :func:`dualproj`."""
    cf = cosine_form(gramian)
    return project(cf, preference(pref, cf.cos.shape[0]), reg)


@register("dualproj", "DualProj", "gramian", "Quinton & Rey 2024", weights=dualproj_weights,
          non_conflicting=True, scale="linear", one_task_identity=True)
def dualproj(pref: jax.Array | None = None, *, reg: float = 1e-4,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DualProj: the preference-weighted gradient projected onto the dual cone.

    Quinton & Rey (2024) (TorchJD), after the projection of GEM (Lopez-Paz & Ranzato 2017).
    Update rule: ``d = argmin_{J d >= 0} |d - J^T p|``; in weight space ``w = argmin_{w >=
    p} w^T G w``, ``d = J^T w``. Non-conflicting up to the ridge (``(J d)_t >= -reg *
    |g_t|^2 * w_t``), linear under positive scaling, permutation invariant.

    Solver: exact active-set QP (:func:`jaxmtl.solvers.nonneg_qp`) in the
    variables ``v = diag(|g|) w``, on the cosine matrix plus ``reg * I`` (a ridge
    relative to each task's norm; TorchJD adds it to the trace-normalised Gramian).

    Args:
      pref: per-task preference weights ``p`` (default ``1/T`` each: the mean gradient).
      reg: ridge on the cosine matrix, ``1e-4``.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`dualproj_weights`.

    References:
      - Quinton & Rey (2024). "Jacobian Descent for Multi-Objective Optimization"
    """
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(dualproj_weights, name="dualproj", num_tasks=num_tasks, pref=pref, reg=reg)
