"""MGDA: the min-norm point of the convex hull of the task gradients.

Désidéri (2012), "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization"; Sener & Koltun (2018), "Multi-Task Learning as Multi-Objective
Optimization".

Update rule: ``w = argmin_{w in simplex} w^T G w``, ``d = J^T w``. ``d`` is the
shortest vector in the convex hull of the gradients; ``J d >= ||d||^2 >= 0`` (no
task's loss increases to first order) and ``d = 0`` exactly at Pareto-stationary
points.

Solver: exact active-set QP (:func:`jaxmtl.solvers.simplex_qp`) on the
trace-normalised Gramian plus ``reg * I`` (default ``1e-6``), instead of the
Frank-Wolfe loop of the reference implementations (which stops at a tolerance
of 1e-3 to 1e-5 and so returns slightly different weights for ``T > 2``).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import stateless, weighted_method
from jaxmtl.solvers import simplex_qp


def mgda_weights(gramian: jax.Array, *, reg: float = 1e-6) -> jax.Array:
    """MGDA weights (on the simplex) from any Gramian ``J J^T``."""
    g = normalize_gramian(gramian)
    return simplex_qp(g + reg * jnp.eye(g.shape[0]))


def mgda(*, reg: float = 1e-6, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MGDA as an optax transformation (see the module docstring).

    Args:
      reg: ridge added to the trace-normalised Gramian (keeps the QP well-posed
        for identical or colinear gradients).
      num_tasks: when given, the input's task count is checked and the weights
        are recorded in ``state.weights``.
    """
    weighting = functools.partial(mgda_weights, reg=reg)
    return weighted_method(stateless(weighting), name="mgda", num_tasks=num_tasks)
