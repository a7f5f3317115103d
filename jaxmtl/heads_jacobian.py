"""Per-task gradients of a trunk-and-heads model without differentiating the heads ``T`` times.

:func:`jaxmtl.value_and_jacobian` with a ``shared`` mask runs ``T`` backward
passes through the *whole* model, so each task's pass also goes back through
the ``T - 1`` heads that do not depend on it (the cotangent is zero there, but
XLA still computes it): the heads cost ``T x T``. When the model is written as
a trunk and per-task heads,

    z = encode(params, *args)                 # the shared representation (any pytree)
    L_t = head_loss(t, params, z, *args)      # uses only head t's parameters and z

:func:`value_and_jacobian_by_heads` takes each head's gradient and its
cotangent at ``z`` from that head alone (``T`` head backward passes in all, one
per task), then runs the trunk's backward pass over the ``T`` stacked cotangents
(vmapped, ``chunk_size`` at a time as in :func:`jaxmtl.value_and_jacobian`).
The output has the format of ``value_and_jacobian(..., shared=shared)``:
shared (trunk) leaves get a leading task axis, the others (heads) the gradient of
``sum_t L_t``, which for a head used by task ``t`` only is task ``t``'s
gradient; pair it with :func:`jaxmtl.partition` and the same mask.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxmtl.jacobians import resolve_chunk
from jaxmtl.masking import Mask, resolve_mask


def value_and_jacobian_by_heads(encode: Callable[..., Any], head_loss: Callable[..., jax.Array], *,
                                num_tasks: int, shared: Mask, stacked_heads: bool = False,
                                chunk_size: int | str | None = "auto") -> Callable[..., Any]:
    """Wraps a trunk and per-task heads into ``f(params, *args) -> (losses, task_grads)``.

    Args:
      encode: ``encode(params, *args, **kwargs) -> z``, the trunk; it may read only the
        ``shared`` leaves of ``params``.
      head_loss: ``head_loss(t, params, z, *args, **kwargs) -> scalar``, task ``t``'s loss
        (``t`` a Python int, so tasks may have different losses); it may read only task
        ``t``'s head leaves of ``params``.
      num_tasks: ``T``.
      shared: the trunk's leaves (see :mod:`jaxmtl.masking`); every other leaf is a head.
      stacked_heads: every head leaf has a leading task axis ``T`` (heads as one batched
        layer); ``head_loss`` then sees task ``t``'s slice of each (``params["heads"]["w"]``
        is one head's matrix) and a traced ``t``, and the heads are differentiated as one
        ``vmap`` over tasks (no Python branching on ``t`` then).
      chunk_size: trunk backward passes per batch, as in :func:`jaxmtl.value_and_jacobian`.

    Returns:
      ``f(params, *args, **kwargs) -> (losses f32[T], task_grads)``, equal to
      ``value_and_jacobian(loss_fn, shared=shared)`` of the composed ``loss_fn``, at
      the cost of ``T`` trunk backward passes plus one backward pass per head.
    """
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
    t_count = num_tasks

    @functools.wraps(encode)
    def wrapped(params, *args, **kwargs):
        mask = jax.tree.leaves(resolve_mask(shared, params))
        leaves, treedef = jax.tree.flatten(params)
        trunk = [x for x, m in zip(leaves, mask) if m]
        heads = [x for x, m in zip(leaves, mask) if not m]

        def join(trunk_leaves, head_leaves):
            tr, hd = iter(trunk_leaves), iter(head_leaves)
            return jax.tree.unflatten(treedef, [next(tr) if m else next(hd) for m in mask])

        z, trunk_vjp = jax.vjp(lambda tr: encode(join(tr, heads), *args, **kwargs), trunk)

        def task_loss(t, hd, rep):
            loss = jnp.asarray(head_loss(t, join(trunk, hd), rep, *args, **kwargs))
            if loss.shape != ():
                raise ValueError(f"head_loss must return a scalar per task, got shape {loss.shape}")
            return loss

        grad_fn = jax.value_and_grad(task_loss, argnums=(1, 2))
        if stacked_heads:
            bad = [x.shape for x in heads if x.ndim == 0 or x.shape[0] != t_count]
            if bad:
                raise ValueError(f"stacked_heads: every head leaf needs a leading axis of {t_count} tasks, "
                                 f"got shapes {bad}")
            losses, (head_grads, stacked) = jax.vmap(grad_fn, in_axes=(0, 0, None))(
                jnp.arange(t_count), heads, z)
        else:
            per_task = [grad_fn(t, heads, z) for t in range(t_count)]
            losses = jnp.stack([loss for loss, _ in per_task])
            head_grads = jax.tree.map(lambda *g: sum(g), *[g for _, (g, _) in per_task])
            stacked = jax.tree.map(lambda *c: jnp.stack(c), *[c for _, (_, c) in per_task])
        chunk = resolve_chunk(chunk_size, t_count)
        back = lambda c: trunk_vjp(c)[0]  # noqa: E731
        trunk_grads = jax.vmap(back)(stacked) if chunk is None else jax.lax.map(back, stacked, batch_size=chunk)
        return losses, join(trunk_grads, head_grads)

    return wrapped
