"""Per-task gradient buffers kept in the optax state (MoCo, DB-MTL, ExcessMTL)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.gramian import num_tasks as _num_tasks


def stacked_zeros(params: Any, t: int) -> Any:
    """A float32 ``(T, *leaf.shape)`` zero buffer per parameter leaf."""
    if params is None:
        raise ValueError("this method keeps per-task gradient buffers: call init(params) with the "
                         "parameters (not None)")
    return jax.tree.map(lambda p: jnp.zeros((t, *jnp.shape(p)), jnp.float32), params)


def scale_rows(scales: jax.Array, tree: Any) -> Any:
    """Multiplies task row ``t`` of every leaf by ``scales[t]``."""
    return jax.tree.map(lambda x: x.astype(jnp.float32) * scales.reshape((-1,) + (1,) * (x.ndim - 1)),
                        tree)


def check_inputs(name: str, buffer: Any, task_grads: Any, t: int, *, params: Any, losses: Any,
                 needs_losses: bool) -> None:
    """Validates one update's inputs against ``T`` and the buffer built by ``init``."""
    _num_tasks(task_grads, params=params, losses=losses, expected=t)
    if needs_losses and losses is None:
        raise ValueError(f"{name} needs the task losses: tx.update(..., losses=losses)")
    try:
        jax.tree.map(lambda b, g: None, buffer, task_grads)
    except (ValueError, TypeError):
        raise ValueError(f"{name}: task_grads do not match the parameters given to init()") from None
