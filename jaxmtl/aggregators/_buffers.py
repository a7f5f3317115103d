"""Per-task gradient buffers kept in the optax state (MoCo, DB-MTL, ExcessMTL)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.gramians import update_dtype


def stacked_zeros(params: Any, t: int, name: str) -> Any:
    """A float32 ``(T, *leaf.shape)`` zero buffer per parameter leaf."""
    if params is None:
        raise ValueError(f"{name} keeps per-task gradient buffers: call init(params) with the "
                         "parameters (not None)")
    return jax.tree.map(lambda p: jnp.zeros((t, *jnp.shape(p)), jnp.float32), params)


def scale_rows(scales: jax.Array, tree: Any) -> Any:
    """Multiplies task row ``t`` of every leaf by ``scales[t]`` (float32)."""
    return jax.tree.map(lambda x: x.astype(jnp.float32) * scales.reshape((-1,) + (1,) * (x.ndim - 1)),
                        tree)


def check_buffer(name: str, buffer: Any, task_grads: Any) -> None:
    """Raises when ``task_grads`` do not have the structure and shapes of the buffer."""
    same = jax.tree.structure(buffer) == jax.tree.structure(task_grads) and all(
        jnp.shape(b) == jnp.shape(g) for b, g in zip(jax.tree.leaves(buffer), jax.tree.leaves(task_grads)))
    if not same:
        raise ValueError(f"{name}: task_grads do not match the parameters given to init() "
                         "(stacked as (T, *param.shape))")


def cast_like(update: Any, task_grads: Any) -> Any:
    """The update in the dtypes an update of ``task_grads`` has (see :func:`jaxmtl.gramians.update_dtype`)."""
    return jax.tree.map(lambda u, g: u.astype(update_dtype(g.dtype)), update, task_grads)
