"""Apply an MTL method to the shared parameters only.

``partition(method, shared)`` runs ``method`` on the leaves selected by the
``shared`` mask (stacked, ``(T, *shape)``) and gives every other leaf — the
task-specific parameters such as the heads — its plain gradient. A
task-specific leaf may come either unstacked (as
``value_and_jacobian(..., shared=mask)`` returns it, used as is) or stacked with
a task axis (the full Jacobian; summed over that axis, which for a head used by
one task is that task's gradient). Telling the two apart needs ``params``, so
``update`` requires them when any task-specific leaf is stacked. The
``extra_task_grads`` extra argument (SDMGrad, MoDo) is masked the same way.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxmtl.masking import Mask, resolve_mask


def _split(mask_leaves, leaves):
    return [x if m else optax.MaskedNode() for m, x in zip(mask_leaves, leaves)]


def partition(method: optax.GradientTransformation, shared: Mask) -> optax.GradientTransformationExtraArgs:
    """Wraps ``method`` so it only sees the leaves where ``shared`` is true."""
    method = optax.with_extra_args_support(method)

    def init(params):
        leaves, treedef = jax.tree.flatten(params)
        mask = jax.tree.leaves(resolve_mask(shared, params))
        return method.init(jax.tree.unflatten(treedef, _split(mask, leaves)))

    def update(task_grads, state, params=None, **extra):
        leaves, treedef = jax.tree.flatten(task_grads)
        mask = jax.tree.leaves(resolve_mask(shared, task_grads if params is None else params))
        if len(mask) != len(leaves):
            raise ValueError(f"shared mask has {len(mask)} leaves but task_grads has {len(leaves)}")
        if not any(mask):
            raise ValueError("shared mask selects no leaf: there is nothing for the method to combine")
        param_leaves = None if params is None else treedef.flatten_up_to(params)
        sub_params = None if params is None else jax.tree.unflatten(treedef, _split(mask, param_leaves))
        if extra.get("extra_task_grads") is not None:  # SDMGrad/MoDo: mask the extra batches too
            extra["extra_task_grads"] = tuple(
                jax.tree.unflatten(treedef, _split(mask, treedef.flatten_up_to(g)))
                for g in extra["extra_task_grads"])
        upd, state = method.update(jax.tree.unflatten(treedef, _split(mask, leaves)), state,
                                   sub_params, **extra)
        upd_leaves = treedef.flatten_up_to(upd)
        out = []
        for i, (m, g) in enumerate(zip(mask, leaves)):
            if m:
                out.append(upd_leaves[i])
            elif param_leaves is not None and jnp.ndim(g) == jnp.ndim(param_leaves[i]) + 1:
                out.append(jnp.sum(g, axis=0))
            else:
                out.append(g)
        return jax.tree.unflatten(treedef, out), state

    return optax.GradientTransformationExtraArgs(init, update)
