"""Projections onto the dual cone of the task gradients (UPGrad, DualProj), in weight space.

The projection of ``J^T u`` onto the dual cone ``{d : J d >= 0}`` is ``J^T w`` with
``w = argmin_{w >= u} w^T G w`` (Quinton & Rey 2024, TorchJD). Both methods
solve it in the variables ``v = N w`` (``N = diag`` of the gradient norms),
where the matrix is the cosine matrix plus ``reg * I`` (a ridge relative to
each task's own norm), with the exact active-set solver
:func:`jaxmtl.solvers.nonneg_qp` on ``v = N u + x``, ``x >= 0``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl._checks import as_float, check, task_vector
from jaxmtl.gramians import CosineForm
from jaxmtl.solvers import nonneg_qp


def preference(pref: jax.Array | None, t: int) -> jax.Array:
    """The preference vector: ``1/T`` each by default, else ``pref`` checked against ``T``."""
    if pref is None:
        return jnp.full((t,), 1.0 / t, jnp.float32)
    check("pref", pref, lambda v: v >= 0, "non-negative")
    return task_vector("pref", pref, t)


def regularized_cosines(cf: CosineForm, reg: float | jax.Array) -> jax.Array:
    check("reg", reg, lambda v: v >= 0, "non-negative")
    return cf.cos + as_float(reg) * jnp.eye(cf.cos.shape[0], dtype=jnp.float32)


def project_each(cf: CosineForm, reg: float | jax.Array) -> jax.Array:
    """``P[i]``: the weights (applied to the gradients) of the projection of the *unit*
    gradient ``u_i`` onto the dual cone, for every task ``i`` (a zero row for a zero gradient).

    The projection is homogeneous in ``u``, so each QP is solved at unit scale and
    is equally accurate for every task, whatever the norms.
    """
    c = regularized_cosines(cf, reg)
    t = c.shape[0]
    x = jax.vmap(lambda row: nonneg_qp(c, row))(c)      # x_i = argmin_{x>=0} (e_i+x)^T C (e_i+x)
    v = jnp.eye(t, dtype=jnp.float32) + x               # row i: v of the projection of u_i
    return jnp.where(cf.alive[:, None], cf.from_units(v), 0.0)


def project(cf: CosineForm, u: jax.Array, reg: float | jax.Array) -> jax.Array:
    """The weights ``w`` of the projection of ``J^T u`` onto the dual cone."""
    c = regularized_cosines(cf, reg)
    shift = cf.norms * u                                 # v >= N u
    x = nonneg_qp(c, c @ shift)
    return cf.from_units(shift + x)
