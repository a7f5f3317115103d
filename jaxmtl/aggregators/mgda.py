"""MGDA: the min-norm point of the convex hull of the task gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, one_of
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register
from jaxmtl.solvers import simplex_qp

__all__ = ["mgda", "mgda_weights"]

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def mgda_weights(gramian: jax.Array | ScaledGramian, *, normalization: str = "none",
                 losses: jax.Array | None = None, reg: float | jax.Array = 1e-6) -> jax.Array:
    """MGDA weights (on the simplex) from a Gramian of any origin; see :func:`mgda`.

    Examples:
      Orthogonal gradients of norms 1 and 2: the min-norm point of their convex hull
      weights them by ``1 / |g_t|^2``, normalised:

      >>> import jax.numpy as jnp, jaxmtl
      >>> jaxmtl.mgda_weights(jnp.array([[1.0, 0.0], [0.0, 4.0]]))
      Array([0.8, 0.2], dtype=float32)
    """
    one_of("normalization", normalization, NORMALIZATIONS)
    cf = cosine_form(gramian)
    t = cf.cos.shape[0]
    # Sener & Koltun's normalisers m_t: the weights are computed for the gradients g_t / m_t,
    # whose relative norms are n_t / m_t
    norms = jnp.where(cf.alive, 1.0, 0.0) if normalization in ("l2", "loss+") else cf.norms
    if normalization in ("loss", "loss+"):
        if losses is None:
            raise ValueError(f"mgda: normalization={normalization!r} needs the task losses")
        m = jnp.abs(jnp.asarray(losses, jnp.float32))
        ok = jnp.isfinite(m) & (m > 0)
        norms = jnp.where(ok, norms / jnp.where(ok, m, 1.0), 0.0)
        norms = norms / jnp.maximum(jnp.max(norms), 1e-30)
    alive = norms > 0
    # a zero gradient is the min-norm point: all weight on it
    dead = jnp.argmax(~alive)
    # in v = N w the problem is min v^T C v over v >= 0, sum_t v_t / n_t = 1
    a = jnp.where(alive, jnp.min(jnp.where(alive, norms, jnp.inf)) / jnp.where(alive, norms, 1.0), 1.0)
    v = simplex_qp(cf.cos + as_float(reg) * jnp.eye(t), a=a)
    w = jnp.where(alive, v / jnp.where(alive, norms, 1.0), 0.0)  # the normalised norms, not cf's
    w = w / jnp.maximum(jnp.sum(w), 1e-30)
    return jnp.where(jnp.all(alive), w, jax.nn.one_hot(dead, t))


@register("mgda", "MGDA", "gramian", "Désidéri 2012; Sener & Koltun 2018", weights=mgda_weights,
          non_conflicting=True, scale="linear", one_task_identity=True)
@register("mgda_l2", "MGDA (l2)", "gramian", "Sener & Koltun 2018", kwargs={"normalization": "l2"},
          weights=mgda_weights, scale="linear", one_task_identity=True, full_rank_only=True)
@register("mgda_loss_plus", "MGDA (loss+)", "gramian", "Sener & Koltun 2018",
          kwargs={"normalization": "loss+"}, weights=mgda_weights, needs_losses=True, scale="linear",
          one_task_identity=True, full_rank_only=True)
def mgda(normalization: str = "none", *, reg: float = 1e-6,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MGDA: the min-norm point of the convex hull of the task gradients.

    Désidéri (2012); Sener & Koltun (2018).

    Update rule: ``w = argmin_{w in simplex} w^T G w``, ``d = J^T w``. ``d`` is the
    shortest vector in the convex hull of the gradients; ``J d >= |d|^2 >= 0`` (no
    task's loss increases to first order) and ``d = 0`` exactly at
    Pareto-stationary points. Linear under positive scaling, permutation
    invariant.

    Solver: the QP is solved exactly (active set, :func:`jaxmtl.solvers.simplex_qp`)
    in the variables ``v_t = |g_t| w_t``, where its matrix is the cosine matrix
    plus ``reg * I``: a ridge relative to each task's own norm, so gradient norms
    that differ by many orders of magnitude lose no accuracy (the reference
    implementations run Frank-Wolfe on ``G`` to a tolerance of 1e-3 to 1e-5).

    MGDA-UB (Sener & Koltun's "upper bound"): pass the Gramian of the gradients
    with respect to the shared representation as the ``gramian=`` extra argument
    (see :func:`jaxmtl.representation_gramian`).

    Args:
      normalization: Sener & Koltun's gradient normaliser: ``'none'`` (default,
        TorchJD), ``'l2'`` (``g_t / |g_t|``), ``'loss'`` (``g_t / L_t``) or
        ``'loss+'`` (``g_t / (L_t |g_t|)``). The weights are computed on the
        normalised gradients and applied to the original ones, as in the paper's
        code (LibMTL applies them to the normalised gradients). The loss-based
        ones need ``losses``.
      reg: ridge on the cosine matrix, ``1e-6`` (keeps the QP well-posed for
        identical or colinear gradients).
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`mgda_weights`.

    References:
      - Désidéri (2012). "Multiple-gradient descent algorithm (MGDA) for multiobjective
        optimization"
      - Sener & Koltun (2018). "Multi-Task Learning as Multi-Objective Optimization"
    """
    one_of("normalization", normalization, NORMALIZATIONS)
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return gramian_method(mgda_weights, name="mgda", num_tasks=num_tasks, normalization=normalization,
                          reg=reg, needs_losses=normalization in ("loss", "loss+"))
