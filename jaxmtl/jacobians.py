"""Per-task losses and gradients: one forward pass, ``T`` vmapped backward passes."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxmtl.masking import Mask, resolve_mask


def value_and_jacobian(loss_fn: Callable[..., Any], *, has_aux: bool = False,
                       shared: Mask = None, chunk_size: int | str | None = "auto") -> Callable[..., Any]:
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
      chunk_size: the ``T`` backward passes run ``chunk_size`` at a time
        (``jax.lax.map``) so memory stays bounded for large ``T``; ``None`` runs
        all ``T`` at once (one ``jax.vmap``). ``'auto'`` (default) is
        :data:`CPU_CHUNK` on the CPU backend, where chunks are faster (the MLP of
        ``python -m benchmarks``: 0.64x the time of one vmap at ``T = 40``), and
        ``None`` on accelerators.

    The function is pure and jit-compatible: one forward pass via ``jax.vjp`` and
    the backward passes over the one-hot cotangents, batched as ``chunk_size`` says.

    Examples:
      Two losses of two parameters; row ``t`` of each leaf is loss ``t``'s gradient:

      >>> import jax.numpy as jnp, jaxmtl
      >>> loss_fn = lambda p, x: jnp.stack([jnp.sum(p["w"] * x), jnp.sum(p["w"] ** 2)])
      >>> losses, task_grads = jaxmtl.value_and_jacobian(loss_fn)({"w": jnp.array([1.0, 2.0])},
      ...                                                         jnp.array([3.0, 4.0]))
      >>> losses
      Array([11.,  5.], dtype=float32)
      >>> task_grads["w"]
      Array([[3., 4.],
             [2., 4.]], dtype=float32)
    """

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kwargs):
        losses, vjp_fn, aux, join = split_vjp(loss_fn, params, shared, has_aux, args, kwargs)
        t = losses.shape[0]
        shared_grads = stacked_vjp(lambda c: vjp_fn(c)[0], t, losses.dtype, chunk_size)
        other_grads = vjp_fn(jnp.ones((t,), losses.dtype))[1]
        value = (losses, aux) if has_aux else losses
        return value, join(shared_grads, other_grads)

    return wrapped


def split_vjp(loss_fn: Callable[..., Any], params: Any, shared: Mask, has_aux: bool,
              args: tuple, kwargs: dict) -> tuple[jax.Array, Callable, Any, Callable]:
    """One forward pass of ``loss_fn`` with the ``shared`` leaves split from the others.

    Returns ``(losses, vjp_fn, aux, join)``: ``vjp_fn(cotangent)`` gives
    ``(shared_leaf_grads, other_leaf_grads)`` (two lists) and ``join(shared,
    other)`` puts two such lists back into the structure of ``params``.
    """
    mask = jax.tree.leaves(resolve_mask(shared, params))
    leaves, treedef = jax.tree.flatten(params)

    def join(shared_leaves, other_leaves):
        sh, ot = iter(shared_leaves), iter(other_leaves)
        return jax.tree.unflatten(treedef, [next(sh) if m else next(ot) for m in mask])

    def f(shared_leaves, other_leaves):
        out = loss_fn(join(shared_leaves, other_leaves), *args, **kwargs)
        losses, aux = out if has_aux else (out, None)
        losses = jnp.asarray(losses)
        if losses.ndim != 1:
            raise ValueError(f"loss_fn must return a 1-D array of task losses, got shape "
                             f"{losses.shape}")
        return losses, aux

    sh = [x for x, m in zip(leaves, mask) if m]
    ot = [x for x, m in zip(leaves, mask) if not m]
    losses, vjp_fn, aux = jax.vjp(f, sh, ot, has_aux=True)
    return losses, vjp_fn, aux, join


CPU_CHUNK = 2
"""Tasks per backward batch of ``chunk_size='auto'`` on the CPU backend."""


def resolve_chunk(chunk_size: int | str | None, t: int) -> int | None:
    """The task-chunk size to use for ``T = t`` tasks (``None``: one vmap over all)."""
    if chunk_size == "auto":
        chunk_size = CPU_CHUNK if jax.default_backend() == "cpu" else None
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str) or int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive int, None or 'auto', got {chunk_size!r}")
    return None if int(chunk_size) >= t else int(chunk_size)


def stacked_vjp(vjp_fn: Callable[[jax.Array], Any], t: int, dtype: Any,
                chunk_size: int | str | None) -> Any:
    """``vjp_fn`` applied to the ``t`` one-hot cotangents, stacked on a leading task axis."""
    eye = jnp.eye(t, dtype=dtype)
    chunk = resolve_chunk(chunk_size, t)
    if chunk is None:
        return jax.vmap(vjp_fn)(eye)
    return jax.lax.map(vjp_fn, eye, batch_size=chunk)


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
    from jaxmtl.gramians import gramian  # the core layer below; imported here to keep jacobian first

    vj = value_and_jacobian(head_loss_fn)

    def wrapped(rep, *args, **kwargs):
        losses, grads = vj(rep, *args, **kwargs)
        return losses, gramian(grads)

    return wrapped
