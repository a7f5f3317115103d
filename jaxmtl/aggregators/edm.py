"""EDM: the equiangular direction, along the bisector of the unit task gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check
from jaxmtl.gramians import CosineForm, ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register
from jaxmtl.solvers import simplex_qp

__all__ = ["edm", "edm_weights"]


def unit_weights(cf: CosineForm, reg: float | jax.Array = 1e-6) -> jax.Array:
    """``beta``: the min-norm point ``sum_t beta_t u_t`` of the convex hull of the unit
    gradients, solved exactly on the cosine matrix plus ``reg * I`` (active set).
    Meaningful when every gradient is non-zero (the callers handle the others)."""
    t = cf.cos.shape[0]
    return simplex_qp(cf.cos + as_float(reg) * jnp.eye(t))


def edm_weights(gramian: jax.Array | ScaledGramian, *, reg: float | jax.Array = 1e-6) -> jax.Array:
    """EDM weights (on the simplex) from a Gramian of any origin; see :func:`edm`."""
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return weights_from_cosines(cosine_form(gramian), reg)


def weights_from_cosines(cf: CosineForm, reg: float | jax.Array = 1e-6) -> jax.Array:
    """:func:`edm_weights` from the Gramian's :class:`~jaxmtl.CosineForm`."""
    t = cf.cos.shape[0]
    w = cf.from_units(unit_weights(cf, reg))
    w = w / jnp.maximum(jnp.sum(w), 1e-30)
    # a zero gradient: its unit vector is undefined and 0 is in the hull; the limit of the
    # weights as its norm goes to 0 puts all the weight on it (d = 0, as in Gama & Grassi's code)
    dead = jnp.argmax(~cf.alive)
    return jnp.where(jnp.all(cf.alive), w, jax.nn.one_hot(dead, t, dtype=jnp.float32))


@register("edm", "EDM", "gramian", "Katrutsa et al. 2020", weights=edm_weights, non_conflicting=True,
          scale="linear", task_scale="direction", one_task_identity=True, full_rank_only=True)
def edm(*, reg: float = 1e-6, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """EDM: the equiangular direction method, along the bisector of the unit task gradients.

    Katrutsa, Merkulov, Tursynbek & Oseledets (2020). Update rule: with the unit gradients
    ``u_t = g_t / |g_t|``, ``beta`` is the min-norm point of their convex hull (MGDA on the
    unit gradients, i.e. on the cosine matrix ``C``):

        beta = argmin_{beta in simplex} beta^T C beta,      u* = sum_t beta_t u_t,

    so ``u_t . u* = |u*|^2`` for every task with ``beta_t > 0`` (``>=`` for the
    others): ``u*`` makes equal angles with the task gradients, and every task's
    loss decreases at the same *relative* rate, whatever the gradient norms. The
    update is ``u*`` scaled so that it is a convex combination of the raw
    gradients, ``d = gamma u* = sum_t w_t g_t`` with

        w_t = (beta_t / |g_t|) / sum_s (beta_s / |g_s|),

    as in the authors' code and Gama & Grassi's (2025) implementation (for two tasks,
    ``d = (|g_2| g_1 + |g_1| g_2) / (|g_1| + |g_2|)``, the authors' ``bisection_direction``).
    ``J d >= 0``; the weights do not change under a common rescaling (``d`` is
    linear) and the direction of ``d`` does not change under per-task rescaling;
    permutation invariant. When a task's gradient is zero the update is zero (all
    the weight on that task). When unit gradients are linearly dependent ``beta``,
    so ``w`` and the length of ``d``, need not be unique (``u*`` is).

    Solver: the QP is solved exactly (active set) on the cosine matrix plus
    ``reg * I`` (the references use Frank-Wolfe on the normalised gradients), so
    gradient norms that differ by orders of magnitude lose no accuracy.

    Args:
      reg: ridge on the cosine matrix, ``1e-6`` (identical or colinear gradients).
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`edm_weights`.

    References:
      - Katrutsa, Merkulov, Tursynbek & Oseledets (2020). "Follow the bisector: a simple method for
        multi-objective optimization"
    """
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(edm_weights, name="edm", num_tasks=num_tasks, reg=reg)
