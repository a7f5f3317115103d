"""Per-sample, per-task gradients of the shared parameters, in one vmapped call."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxmtl.jacobians import split_vjp, stacked_vjp
from jaxmtl.masking import Mask


def per_sample_jacobian(loss_fn: Callable[..., Any], *, shared: Mask = None,
                        chunk_size: int | str | None = "auto") -> Callable[..., Any]:
    """Wraps ``loss_fn(params, batch, *args) -> f32[T]`` into per-sample Jacobians.

    The returned ``f(params, batch, *args)`` gives ``(losses, grads)``:
    ``losses`` ``(S, T)`` and ``grads`` ``(S, T, P)``, where ``S`` is the leading
    size of every ``batch`` leaf and row ``grads[s, t]`` is the gradient of task
    ``t``'s loss on sample ``s`` alone (``loss_fn`` sees a batch of one),
    flattened over the ``P`` entries of the ``shared`` leaves (all leaves when
    ``shared`` is ``None``). Samples are batched with ``jax.vmap``, tasks as in
    :func:`jaxmtl.value_and_jacobian` (``chunk_size``); no Python loop.
    """

    def one(params, sample, *args):
        batch = jax.tree.map(lambda x: x[None], sample)
        losses, vjp_fn, _, _ = split_vjp(loss_fn, params, shared, False, (batch, *args), {})
        grads = stacked_vjp(lambda c: vjp_fn(c)[0], losses.shape[0], losses.dtype, chunk_size)
        if not grads:
            raise ValueError("the shared mask selects no parameter")
        t = losses.shape[0]
        return losses, jnp.concatenate([g.reshape(t, -1) for g in grads], axis=1)

    def wrapped(params, batch, *args):
        sizes = {x.shape[0] if jnp.ndim(x) else None for x in jax.tree.leaves(batch)}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(f"every batch leaf needs the same leading sample axis, got sizes {sizes}")
        return jax.vmap(one, in_axes=(None, 0, *(None,) * len(args)))(params, batch, *args)

    return wrapped
