"""The ``extra_task_grads`` extra argument of SDMGrad and MoDo."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.gramians import cross_gramian, max_abs, num_tasks as _num_tasks


def extra_cross_gramian(extra: dict[str, Any], t: int, name: str) -> tuple[jax.Array, jax.Array]:
    """``(J_b J_c^T / s**2, s)`` from the ``extra_task_grads`` pair, ``s`` their largest entry."""
    pair = extra.get("extra_task_grads")
    if pair is None or len(pair) != 2:
        raise ValueError(
            f"{name} needs extra_task_grads=(task_grads_b, task_grads_c): the per-task gradients of "
            "two more independent batches, e.g. tx.update(task_grads_a, state, params, "
            "extra_task_grads=(task_grads_b, task_grads_c))")
    for k, other in enumerate(pair):
        try:
            _num_tasks(other, expected=t)
        except ValueError as err:
            raise ValueError(f"{name}: extra_task_grads[{k}]: {err}") from None
    xb, xc = pair
    s = jnp.maximum(max_abs(xb), max_abs(xc))
    s = jnp.where(jnp.isfinite(s) & (s > 0), s, 1.0)
    return cross_gramian(jax.tree.map(lambda x: x / s, xb), jax.tree.map(lambda x: x / s, xc)), s
