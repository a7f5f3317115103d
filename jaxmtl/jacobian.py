"""Per-task losses and gradients: one forward pass, ``T`` vmapped backward passes."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxmtl.masking import Mask, resolve_mask


def value_and_jacobian(loss_fn: Callable[..., Any], *, has_aux: bool = False,
                       shared: Mask = None, chunk_size: int | None = None) -> Callable[..., Any]:
    """Wraps ``loss_fn(params, *args) -> f32[T]`` into ``(losses, task_grads)``.

    ``task_grads`` has the structure of ``params``; a leaf selected by ``shared``
    has shape ``(T, *leaf.shape)`` (row ``t`` is the gradient of loss ``t``); every
    other leaf is a *task-specific* parameter and gets the plain gradient of
    ``sum_t L_t`` with its own shape (for a head used by task ``t`` only, that is
    task ``t``'s gradient), so ``T`` heads never cost ``T x T`` stored gradients.
    Use :func:`jaxmtl.partition` to apply a method to such a mixed pytree.

    Args:
      loss_fn: ``loss_fn(params, *args, **kwargs)`` returning the ``T`` task losses
        (a 1-D array), or ``(losses, aux)`` when ``has_aux``.
      has_aux: returns ``((losses, aux), task_grads)`` like ``jax.value_and_grad``.
      shared: shared-parameter mask (see :mod:`jaxmtl.masking`); ``None`` stacks
        every leaf (the full Jacobian).
      chunk_size: when set, the ``T`` backward passes run ``chunk_size`` at a time
        (``jax.lax.map``) so memory stays bounded for large ``T``.

    The function is pure and jit-compatible: one forward pass via ``jax.vjp`` and
    the backward passes batched by ``jax.vmap`` over one-hot cotangents.
    """

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kwargs):
        mask_leaves = jax.tree.leaves(resolve_mask(shared, params))
        leaves, treedef = jax.tree.flatten(params)
        shared_idx = [i for i, m in enumerate(mask_leaves) if m]
        other_idx = [i for i, m in enumerate(mask_leaves) if not m]

        def f(shared_leaves, other_leaves):
            merged = list(leaves)
            for i, x in zip(shared_idx, shared_leaves):
                merged[i] = x
            for i, x in zip(other_idx, other_leaves):
                merged[i] = x
            out = loss_fn(jax.tree.unflatten(treedef, merged), *args, **kwargs)
            if has_aux:
                losses, aux = out
            else:
                losses, aux = out, None
            losses = jnp.asarray(losses)
            if losses.ndim != 1:
                raise ValueError(f"loss_fn must return a 1-D array of task losses, got shape "
                                 f"{losses.shape}")
            return losses, aux

        sh = [leaves[i] for i in shared_idx]
        ot = [leaves[i] for i in other_idx]
        losses, vjp_fn, aux = jax.vjp(f, sh, ot, has_aux=True)
        t = losses.shape[0]
        eye = jnp.eye(t, dtype=losses.dtype)
        shared_vjp = lambda c: vjp_fn(c)[0]
        if chunk_size is None:
            shared_grads = jax.vmap(shared_vjp)(eye)
        else:
            shared_grads = jax.lax.map(shared_vjp, eye, batch_size=chunk_size)
        other_grads = vjp_fn(jnp.ones((t,), losses.dtype))[1] if ot else []
        out = list(leaves)
        for i, g in zip(shared_idx, shared_grads):
            out[i] = g
        for i, g in zip(other_idx, other_grads):
            out[i] = g
        task_grads = jax.tree.unflatten(treedef, out)
        value = (losses, aux) if has_aux else losses
        return value, task_grads

    return wrapped


def jacobian(loss_fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """Like :func:`value_and_jacobian` but returns only ``task_grads`` (or ``(task_grads, aux)``)."""
    vj = value_and_jacobian(loss_fn, **kwargs)
    has_aux = kwargs.get("has_aux", False)

    def wrapped(*args, **kw):
        value, grads = vj(*args, **kw)
        return (grads, value[1]) if has_aux else grads

    return wrapped


def representation_gramian(head_loss_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``head_loss_fn(rep, *args) -> f32[T]`` into ``(losses, G_rep)``.

    ``G_rep[t, s] = <dL_t/d rep, dL_s/d rep>``: the Gramian of the gradients with
    respect to a shared representation ``rep`` (e.g. the encoder's output
    features). Pass it as the ``gramian=`` extra argument of a Gramian method for
    the representation variants (MGDA-UB of Sener & Koltun, LibMTL's
    ``rep_grad``); it costs ``T`` backward passes through the heads only.
    """
    from jaxmtl.gramian import gramian  # the core layer below; imported here to keep jacobian first

    vj = value_and_jacobian(head_loss_fn)

    def wrapped(rep, *args, **kwargs):
        losses, grads = vj(rep, *args, **kwargs)
        return losses, gramian(grads)

    return wrapped
