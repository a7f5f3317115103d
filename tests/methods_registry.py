"""Helpers over the library's method registry (``jaxmtl.registry``) shared by the tests."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxmtl import registry

SPECS = registry.METHODS
"""Every registered method by name (a :class:`jaxmtl.registry.MethodInfo` each)."""


@functools.lru_cache(maxsize=None)
def built(name: str, t: int):
    """``(transformation, jitted update)`` of method ``name`` built for ``t`` tasks."""
    m = SPECS[name].build(t)
    return m, jax.jit(m.update)


def inputs(name: str, j, losses=None):
    """``(params, extra kwargs)`` for one update on the stacked gradients ``j``."""
    j = jnp.asarray(j)
    t = j.shape[0]
    kwargs = {"losses": jnp.linspace(1.0, 2.0, t) if losses is None else jnp.asarray(losses)}
    if SPECS[name].extra_batches:
        kwargs["extra_task_grads"] = (j, j)
    return jnp.zeros(j.shape[1:], j.dtype), kwargs


def aggregate_and_weights(name: str, j, *, losses=None):
    """One jitted update of method ``name`` on ``j`` (shape ``(T, P)``): ``(d, state.weights)``."""
    j = jnp.asarray(j)
    m, update = built(name, j.shape[0])
    params, kwargs = inputs(name, j, losses)
    out, state = update(j, m.init(params), params, **kwargs)
    weights = state.weights
    return np.asarray(out, np.float64), None if weights is None else np.asarray(weights, np.float64)


def aggregate(name: str, j, *, losses=None) -> np.ndarray:
    """One jitted update of method ``name`` on ``j`` (shape ``(T, P)``), as float64."""
    return aggregate_and_weights(name, j, losses=losses)[0]
