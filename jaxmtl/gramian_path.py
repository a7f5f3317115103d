"""The Gramian-only path: weights from ``G``, then one backward pass of ``sum_t w_t L_t``.

A Gramian method needs the Jacobian ``J`` only through ``G = J J^T`` and the
final combination ``J^T w``. :func:`weighted_value_and_grad` computes ``G``
inside the function (``J`` never leaves it, so XLA may free it as soon as ``G``
is formed), calls a Gramian weighting ``w = weighting(G)``, and gets the update
as the gradient of ``sum_t w_t L_t`` by one more backward pass that reuses the
forward pass's residuals. Compared with :func:`jaxmtl.value_and_jacobian`
followed by an optax method, it returns an ordinary gradient pytree (chain any
optax optimiser directly) and does not keep ``J`` alive until the combination.
``python -m benchmarks`` reports when it wins (see ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxmtl.gramians import gramian
from jaxmtl.jacobians import split_vjp, stacked_vjp
from jaxmtl.masking import Mask, resolve_mask


def weighted_value_and_grad(loss_fn: Callable[..., Any], weighting: Callable[[jax.Array], jax.Array],
                            *, has_aux: bool = False, shared: Mask = None,
                            chunk_size: int | str | None = "auto",
                            weight_heads: bool = False) -> Callable[..., Any]:
    """Wraps ``loss_fn(params, *args) -> f32[T]`` into ``(losses, weights, grads)``.

    * ``G``: the Gramian of the per-task gradients of the leaves selected by
      ``shared`` (all leaves when ``None``), from ``T`` backward passes run
      ``chunk_size`` tasks at a time (see :func:`jaxmtl.value_and_jacobian`);
    * ``weights = weighting(G)``: any Gramian weighting, e.g.
      :func:`jaxmtl.upgrad_weights` or ``functools.partial(jaxmtl.cagrad_weights,
      c=0.5)``; it is not differentiated through;
    * ``grads``: shared leaves get ``sum_t w_t dL_t/dtheta`` (one backward pass);
      the other leaves get the plain gradient of ``sum_t L_t`` (as under
      :func:`jaxmtl.partition`), or the weighted one when ``weight_heads``.

    With ``has_aux`` the first output is ``(losses, aux)``. Stateful methods
    (EMAs, warm starts, PRNG keys) keep using the optax path.
    """

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kwargs):
        if not any(jax.tree.leaves(resolve_mask(shared, params))):
            raise ValueError("shared mask selects no leaf: there is no Gramian to weight")
        losses, vjp_fn, aux, join = split_vjp(loss_fn, params, shared, has_aux, args, kwargs)
        t = losses.shape[0]
        g = gramian(stacked_vjp(lambda c: vjp_fn(c)[0], t, losses.dtype, chunk_size))
        w = jax.lax.stop_gradient(jnp.asarray(weighting(g), jnp.float32))
        if w.shape != (t,):
            raise ValueError(f"weighting returned shape {w.shape}; expected ({t},)")
        shared_grads, other_grads = vjp_fn(w.astype(losses.dtype))
        if not weight_heads:
            other_grads = vjp_fn(jnp.ones((t,), losses.dtype))[1]
        grads = join(shared_grads, other_grads)
        value = (losses, aux) if has_aux else losses
        return value, w, grads

    return wrapped
