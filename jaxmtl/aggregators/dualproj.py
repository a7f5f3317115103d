"""DualProj: the mean gradient projected onto the dual cone of the task gradients.

Quinton & Rey (2024), "Jacobian Descent for Multi-Objective Optimization"
(TorchJD), after the projection of GEM (Lopez-Paz & Ranzato 2017). Update rule:
``d = argmin_{J d >= 0} |d - J^T p|`` with the preference ``p`` (default ``1/T``
each, the mean); in weight space ``w = argmin_{w >= p} w^T G w``, ``d = J^T w``.
Non-conflicting up to the ridge (``(J d)_t >= -reg_eps * trace(G) * w_t``), linear
under positive scaling, permutation invariant. Defaults as TorchJD: the
trace-normalised Gramian plus ``reg_eps = 1e-4``; exact active-set QP.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.aggregators.upgrad import project_weights, regularized_gramian
from jaxmtl.method import stateless, weighted_method


def dualproj_weights(gramian: jax.Array, pref: jax.Array | None = None, *,
                     reg_eps: float = 1e-4) -> jax.Array:
    """DualProj weights from any Gramian."""
    t = gramian.shape[0]
    pref = jnp.full((t,), 1.0 / t) if pref is None else jnp.asarray(pref, jnp.float32)
    return project_weights(pref[None], regularized_gramian(gramian, reg_eps))[0]


def dualproj(pref: jax.Array | None = None, *, reg_eps: float = 1e-4,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DualProj as an optax transformation (see the module docstring)."""
    if pref is not None and num_tasks is None:
        num_tasks = len(pref)
    weighting = functools.partial(dualproj_weights, pref=pref, reg_eps=reg_eps)
    return weighted_method(stateless(weighting), name="dualproj", num_tasks=num_tasks)
