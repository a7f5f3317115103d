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

Plain task-specific gradients are what gradient aggregators expect (LibMTL
does the same). A *loss weighting* minimises ``sum_t w_t L_t``, so head ``t``
should get ``w_t`` times its gradient: pass ``task_of`` (which task each
task-specific leaf belongs to) and the heads are scaled by the method's
weights of that step (the method must record them: build it with
``num_tasks``). A step the method skips (non-finite, see :mod:`jaxmtl.protocol`)
gives zero updates for the task-specific leaves too.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramians import combine, update_dtype
from jaxmtl.masking import Mask, resolve_mask
from jaxmtl.protocol import find_method_state, recorded_weights


class PartitionState(NamedTuple):
    """State of :func:`partition`."""

    method: Any             # the wrapped method's state (over the shared leaves)
    others: Any             # the state of ``others`` (``optax.EmptyState()`` without it)


def _split(mask_leaves, leaves):
    return [x if m else optax.MaskedNode() for m, x in zip(mask_leaves, leaves)]


def resolve_task_of(task_of: Any, tree: Any, num_tasks: int) -> list[int]:
    """Task index per leaf of ``tree`` from an int pytree (or prefix) or a callable; -1: none.

    Raises ``ValueError`` for an index outside ``[-1, num_tasks - 1]``.
    """
    if callable(task_of):
        task_of = task_of(tree)
    try:
        full = jax.tree.map(lambda t, sub: jax.tree.map(lambda _: int(t), sub), task_of, tree)
    except (ValueError, TypeError) as err:
        raise ValueError(f"task_of does not match the parameter tree ({err})") from None
    for path, owner in jax.tree_util.tree_leaves_with_path(full):
        if not -1 <= owner < num_tasks:
            raise ValueError(f"task_of gives task {owner} for leaf {jax.tree_util.keystr(path)}, but "
                             f"there are {num_tasks} tasks: use 0..{num_tasks - 1}, or -1 for none")
    return jax.tree.leaves(full)


def partition(method: optax.GradientTransformation, shared: Mask,
              others: optax.GradientTransformation | None = None, *,
              task_of: Any = None) -> optax.GradientTransformationExtraArgs:
    """Wraps ``method`` so it only sees the leaves where ``shared`` is true.

    ``task_of``: an int pytree (or prefix, or callable on the parameters) giving,
    for each task-specific leaf, the task it belongs to (``-1`` for none); those
    leaves are then multiplied by the method's weight for that task.

    ``others``, when given, transforms the task-specific leaves' gradients (e.g.
    ``optax.scale_by_adam()`` when ``method`` already contains a per-task Adam,
    see :func:`jaxmtl.optim.adatask`); by default they pass through unchanged.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`PartitionState`.

    Examples:
      The trunk's two task gradients are combined by UPGrad; the head's plain gradient
      (as ``value_and_jacobian(..., shared=...)`` gives it) passes through:

      >>> import jax.numpy as jnp, jaxmtl
      >>> params = {"trunk": jnp.zeros(2), "head": jnp.zeros(1)}
      >>> grads = {"trunk": jnp.array([[1.0, 0.0], [-1.0, 1.0]]), "head": jnp.array([0.5])}
      >>> tx = jaxmtl.partition(jaxmtl.upgrad(), {"trunk": True, "head": False})
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> [round(u, 3) for u in updates["trunk"].tolist()], updates["head"].tolist()
      ([0.25, 0.75], [0.5])
    """
    method = optax.with_extra_args_support(method)

    def _others_tree(mask, leaves, treedef):
        return jax.tree.unflatten(treedef, [optax.MaskedNode() if m else x for m, x in zip(mask, leaves)])

    def init(params):
        leaves, treedef = jax.tree.flatten(params)
        mask = jax.tree.leaves(resolve_mask(shared, params))
        state = method.init(jax.tree.unflatten(treedef, _split(mask, leaves)))
        if others is None:
            return PartitionState(state, optax.EmptyState())
        return PartitionState(state, others.init(_others_tree(mask, leaves, treedef)))

    def update(task_grads, state, params=None, **extra):
        leaves, treedef = jax.tree.flatten(task_grads)
        mask = jax.tree.leaves(resolve_mask(shared, task_grads if params is None else params))
        if len(mask) != len(leaves):
            raise ValueError(f"shared mask has {len(mask)} leaves but task_grads has {len(leaves)}")
        if not any(mask):
            raise ValueError("shared mask selects no leaf: there is nothing for the method to combine")
        param_leaves = None if params is None else treedef.flatten_up_to(params)
        sub_params = None if params is None else jax.tree.unflatten(treedef, _split(mask, param_leaves))
        state, others_state = state
        if extra.get("extra_task_grads") is not None:  # SDMGrad/MoDo: mask the extra batches too
            extra["extra_task_grads"] = tuple(
                jax.tree.unflatten(treedef, _split(mask, treedef.flatten_up_to(g)))
                for g in extra["extra_task_grads"])
        before = find_method_state(state)
        upd, state = method.update(jax.tree.unflatten(treedef, _split(mask, leaves)), state,
                                   sub_params, **extra)
        upd_leaves = treedef.flatten_up_to(upd)
        after = find_method_state(state)
        # a step the method skipped (non-finite) is skipped for the task-specific leaves too
        skipped = None if before is None else after.skipped > before.skipped
        if task_of is not None:
            weights = recorded_weights(state)
            if weights is None:
                raise ValueError("partition(task_of=...) scales the heads by the method's weights: "
                                 "build the method with num_tasks so it records them")
            owners = resolve_task_of(task_of, task_grads if params is None else params, weights.shape[0])
        plain = []
        for i, (m, g) in enumerate(zip(mask, leaves)):
            if m:
                plain.append(optax.MaskedNode())
            elif param_leaves is not None and jnp.ndim(g) == jnp.ndim(param_leaves[i]) + 1:
                plain.append(combine(jnp.ones(jnp.shape(g)[0]), g))  # a dot: XLA's task-axis sums are slow on CPU
            else:
                plain.append(jnp.asarray(g).astype(update_dtype(jnp.result_type(g))))
            if task_of is not None and not m and owners[i] >= 0:
                plain[-1] = (weights[owners[i]] * plain[-1]).astype(update_dtype(plain[-1].dtype))
            if skipped is not None and not m:
                plain[-1] = jnp.where(skipped, jnp.zeros_like(plain[-1]), plain[-1])
        if others is not None:
            other_params = None if params is None else _others_tree(mask, param_leaves, treedef)
            transformed, others_state = others.update(jax.tree.unflatten(treedef, plain), others_state,
                                                      other_params)
            plain = treedef.flatten_up_to(transformed)
        out = [upd_leaves[i] if m else plain[i] for i, m in enumerate(mask)]
        return jax.tree.unflatten(treedef, out), PartitionState(state, others_state)

    return optax.GradientTransformationExtraArgs(init, update)
