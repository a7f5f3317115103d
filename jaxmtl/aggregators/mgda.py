"""MGDA: the min-norm point of the convex hull of the task gradients.

Désidéri (2012), "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization"; Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective
Optimization".

Update rule: ``w = argmin_{w in simplex} w^T G w``, ``d = J^T w``. ``d`` is the
shortest vector in the convex hull of the gradients; ``J d >= |d|^2 >= 0`` (no
task's loss increases to first order) and ``d = 0`` exactly at Pareto-stationary
points. Linear under positive scaling, permutation invariant.

``normalization`` (Sener & Koltun's gradient normalisers): ``'none'`` (default,
TorchJD), ``'l2'`` (``g_t / |g_t|``), ``'loss'`` (``g_t / L_t``) or ``'loss+'``
(``g_t / (L_t |g_t|)``); the weights are computed on the normalised gradients
and applied to the original ones, as in the paper's code (LibMTL applies them
to the normalised gradients instead). The loss-based ones need ``losses``.

MGDA-UB (the paper's "upper bound" variant): pass the Gramian of the
gradients with respect to the shared representation as the ``gramian=`` extra
argument (see :func:`jaxmtl.representation_gramian`).

Solver: exact active-set simplex QP (:func:`jaxmtl.solvers.simplex_qp`) on the
trace-normalised Gramian plus ``reg * I`` (default ``1e-6``), instead of the
Frank-Wolfe loop of the reference implementations (which stops at a tolerance
of 1e-3 to 1e-5 and so returns slightly different weights for ``T > 2``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian, task_norms
from jaxmtl.method import weighted_method
from jaxmtl.solvers import simplex_qp

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def mgda_weights(gramian: jax.Array, *, reg: float = 1e-6) -> jax.Array:
    """MGDA weights (on the simplex) from any Gramian ``J J^T``."""
    g = normalize_gramian(gramian)
    return simplex_qp(g + reg * jnp.eye(g.shape[0]))


def gradient_normalizers(gramian: jax.Array, losses: jax.Array | None, normalization: str) -> jax.Array:
    """Sener & Koltun's per-task normalisers ``n_t`` (the gradients become ``g_t / n_t``)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    t = gramian.shape[0]
    if normalization == "none":
        return jnp.ones((t,), jnp.float32)
    if normalization in ("loss", "loss+") and losses is None:
        raise ValueError(f"normalization={normalization!r} needs the task losses")
    norms = task_norms(jnp.asarray(gramian, jnp.float32))
    if normalization == "l2":
        return norms
    if normalization == "loss":
        return jnp.asarray(losses, jnp.float32)
    return jnp.asarray(losses, jnp.float32) * norms


def mgda(normalization: str = "none", *, reg: float = 1e-6,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MGDA as an optax transformation (see the module docstring).

    Args:
      normalization: gradient normaliser, one of ``'none'``, ``'l2'``, ``'loss'``, ``'loss+'``.
      reg: ridge added to the trace-normalised Gramian (keeps the QP well-posed
        for identical or colinear gradients).
      num_tasks: when given, the input's task count is checked and the weights
        are recorded in ``state.weights``.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")

    def weight_fn(g, inner, *, losses, **_):
        n = gradient_normalizers(g, losses, normalization)
        ok = jnp.isfinite(n) & (n > 0)
        inv = jnp.where(ok, 1.0 / jnp.where(ok, n, 1.0), 0.0)
        w = mgda_weights(g * inv[:, None] * inv[None, :], reg=reg)
        return w, inner

    return weighted_method(weight_fn, name="mgda", num_tasks=num_tasks,
                           needs_losses=normalization in ("loss", "loss+"))
