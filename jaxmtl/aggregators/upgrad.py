"""UPGrad: the average of each task gradient projected onto the dual cone of all.

Quinton & Rey (2024), "Jacobian Descent for Multi-Objective Optimization"
(TorchJD). Update rule: for each task ``i`` project ``g_i`` (scaled by the
preference ``p_i``, default ``1/T``) onto the dual cone ``{d : J d >= 0}``;
``d`` is the sum of the projections. In weight space, with the Gramian ``G``:

    w_i = argmin_{w >= p_i e_i} w^T G w,     w = sum_i w_i,     d = J^T w.

Each projection is non-conflicting, so ``J d >= 0`` (with the ridge below:
``(J d)_t >= -reg_eps * trace(G) * w_t``, from the QPs' KKT conditions); ``d`` is linear in a common
positive rescaling of the gradients and equivariant to permuting the tasks;
``d = 0`` at Pareto-stationary points where the projections vanish.

Defaults follow TorchJD: the Gramian is divided by its trace and regularised
with ``reg_eps * I`` (``1e-4``) before the QPs; TorchJD solves them with
quadprog, jaxmtl with the exact active-set solver :func:`jaxmtl.solvers.nonneg_qp`
(all ``T`` QPs batched by ``vmap``).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import stateless, weighted_method
from jaxmtl.solvers import nonneg_qp


def project_weights(u: jax.Array, gramian: jax.Array) -> jax.Array:
    """``argmin_{w >= u} w^T G w`` for every row ``u`` of ``u`` (``G`` positive definite)."""
    return jax.vmap(lambda row: row + nonneg_qp(gramian, gramian @ row))(u)


def regularized_gramian(gramian: jax.Array, reg_eps: float) -> jax.Array:
    """Trace-normalised Gramian plus ``reg_eps * I`` (TorchJD's conditioning)."""
    g = normalize_gramian(gramian)
    return g + reg_eps * jnp.eye(g.shape[0], dtype=g.dtype)


def upgrad_weights(gramian: jax.Array, pref: jax.Array | None = None, *,
                   reg_eps: float = 1e-4) -> jax.Array:
    """UPGrad weights from any Gramian (``pref`` defaults to ``1/T`` each)."""
    t = gramian.shape[0]
    pref = jnp.full((t,), 1.0 / t) if pref is None else jnp.asarray(pref, jnp.float32)
    g = regularized_gramian(gramian, reg_eps)
    return jnp.sum(project_weights(jnp.diag(pref), g), axis=0)


def upgrad(pref: jax.Array | None = None, *, reg_eps: float = 1e-4,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """UPGrad as an optax transformation (see the module docstring).

    Args:
      pref: per-task preference weights (default ``1/T``, TorchJD's mean).
      reg_eps: ridge on the trace-normalised Gramian.
      num_tasks: when given, the input's task count is checked and the weights
        are recorded in ``state.weights``.
    """
    if pref is not None and num_tasks is None:
        num_tasks = len(pref)
    weighting = functools.partial(upgrad_weights, pref=pref, reg_eps=reg_eps)
    return weighted_method(stateless(weighting), name="upgrad", num_tasks=num_tasks)
