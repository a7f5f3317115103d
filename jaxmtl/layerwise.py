"""The Gramian path without the ``T x P`` Jacobian: ``G = sum_l J_l J_l^T``, layer by layer.

A Gramian method needs the task Jacobian only through ``G = J J^T``, which is a
sum over layers. For a trunk written as a chain of layers and ``T`` head losses,

    h_0 = x,   h_l = layers[l](params_l, h_{l-1}),   L = head_loss(h_L, head_params, *args)   # f32[T]

:func:`layerwise_weighted_value_and_grad` runs the ``T`` backward passes one
layer at a time: it carries the ``T`` stacked cotangents ``D_l`` (``T x`` the
layer's output) down the chain and adds each layer's contribution to ``G`` as
soon as it is formed, so at most one layer's per-task gradients exist at once.
For a :class:`Dense` layer (``h @ w + b`` over a batch of ``N`` rows) the
contribution can skip the per-task weight gradients ``h^T D_t`` altogether:

    <h^T D_t, h^T D_s> = sum_{n,m} (h h^T)[n, m] <D_t[n], D_s[m]>,

``N^2 in + T N^2 out + T^2 N out`` flops and ``T N out`` memory instead of
``T N in out`` flops and ``T in out`` memory ("activations" route, as TorchJD's
``autogram`` does in PyTorch). ``route="auto"`` picks, per Dense layer, the
route with fewer flops: activations when the batch is small next to the layer's
input width (``N (N + T) < T in`` roughly), parameters otherwise. Then
``w = weighting(G)`` and one ordinary backward pass of ``sum_t w_t L_t`` gives
the update, as in :func:`jaxmtl.weighted_value_and_grad`.

Measured (``python -m benchmarks --sections jacobian``, MLP 1296-512-512,
batch 256, UPGrad, CPU): at T = 128 the activations route needs 303 MiB against
786 MiB for the shared-only Jacobian and 1245 MiB for
:func:`jaxmtl.weighted_value_and_grad` (XLA's estimates), in 0.46x the
Jacobian's time; at T = 40, 101 against 249 MiB (``benchmarks/RESULTS.md``). Layers other than :class:`Dense`
(convolutions, normalisations) contribute through their own vmapped backward
pass (their per-task gradients exist while that layer is processed).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from jaxmtl.gramians import gramian

_HIGHEST = jax.lax.Precision.HIGHEST
ROUTES = ("auto", "activations", "parameters")


@dataclass(frozen=True)
class Dense:
    """A linear layer ``h @ params["w"] + params["b"]`` (``w``: ``(in, out)``, ``b``: ``(out,)``
    or absent) over inputs ``(..., in)``; its Gramian can come from activations."""

    def __call__(self, params: dict, h: jax.Array) -> jax.Array:
        y = jnp.matmul(h, params["w"])
        return y + params["b"] if "b" in params else y


def dense_route(rows: int, width_in: int, width_out: int, num_tasks: int, *,
                combine_by_backward: bool = False) -> str:
    """``"activations"`` or ``"parameters"``: the route with fewer flops for one Dense layer.

    ``combine_by_backward``: the update ``J^T w`` of a parameters-routed layer is then
    ``sum_t w_t g_t`` from its per-task gradients (``T in out`` flops) and that of an
    activations-routed layer comes from one more backward pass (``2 N in out`` flops:
    its weight gradient and its input cotangent), as in :mod:`jaxmtl.flax_gramian`.
    """
    n, t = rows, num_tasks
    activations = n * n * width_in + t * n * n * width_out + t * t * n * width_out
    parameters = t * n * width_in * width_out + t * t * width_in * width_out
    if combine_by_backward:
        activations += 2 * n * width_in * width_out
        parameters += t * width_in * width_out
    return "activations" if activations < parameters else "parameters"


GRAM_BLOCKS = 4
"""The activations route forms ``K D_t`` a quarter of the rows at a time (XLA keeps several
``T x N x out`` temporaries alive when it is formed at once: 0.66x the Jacobian's memory
at T = 128 on the benchmark MLP instead of 0.34x)."""


def dense_gram(h: jax.Array, d: jax.Array) -> jax.Array:
    """``<h^T D_t, h^T D_s>`` for all ``t, s`` from the input ``h (N, in)`` and the stacked
    output cotangents ``d (T, N, out)``, without forming ``h^T D_t``."""
    n = h.shape[0]
    k = jnp.einsum("ni,mi->nm", h, h, precision=_HIGHEST)
    block = -(-n // min(GRAM_BLOCKS, n))
    rows = jnp.arange(block)

    def add_block(i, g):
        start = jnp.minimum(i * block, n - block)           # the last block is clamped back ...
        fresh = (start + rows >= i * block)[None, :, None]  # ... and counts only its new rows
        kd = jnp.einsum("am,tmo->tao", jax.lax.dynamic_slice_in_dim(k, start, block, 0), d, precision=_HIGHEST)
        da = jnp.where(fresh, jax.lax.dynamic_slice_in_dim(d, start, block, 1), 0.0)
        return g + jnp.einsum("tao,sao->ts", kd, da, precision=_HIGHEST)

    return jax.lax.fori_loop(0, -(-n // block), add_block, jnp.zeros((d.shape[0],) * 2, jnp.float32))


def _has_params(p: Any) -> bool:
    return bool(jax.tree.leaves(p))


def _check_layers(layers, route):
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers is empty: the trunk needs at least one layer")
    return layers


def _forward_and_gramian(layers, head_loss, route, stacked_heads, params, x, args, kwargs):
    """The losses, the trunk's Gramian (layer by layer), and the vjps for the combination."""
    if set(params) != {"trunk", "heads"} or len(params["trunk"]) != len(layers):
        raise ValueError(f"params must be {{'trunk': [one entry per layer ({len(layers)})], 'heads': ...}}; "
                         f"got keys {sorted(params)}" + (f" and {len(params['trunk'])} trunk entries"
                                                        if "trunk" in params else ""))
    trunk = list(params["trunk"])
    inputs, vjps, h = [], [], x
    for layer, p in zip(layers, trunk):
        inputs.append(h)
        if _has_params(p):
            h, vjp = jax.vjp(layer, p, h)
        else:  # called as layer(h); its (empty) parameter cotangent is p itself
            h, vjp_h = jax.vjp(layer, h)
            vjp = lambda c, vjp_h=vjp_h, p=p: (p, vjp_h(c)[0])
        vjps.append(vjp)
    if stacked_heads:
        losses, d, head_grads = _stacked_heads(head_loss, h, params["heads"], args, kwargs)
        t = losses.shape[0]

        def heads(w, weight_heads, d=d):  # head t moves L_t only: its gradient is L_t's, times w_t
            cot = jnp.einsum("t,t...->...", w.astype(d.dtype), d)
            scaled = jax.tree.map(lambda x: x * jnp.reshape(w, (t,) + (1,) * (x.ndim - 1)).astype(x.dtype),
                                  head_grads)
            return cot, scaled if weight_heads else head_grads
    else:
        losses, head_vjp = jax.vjp(lambda z, ph: head_loss(z, ph, *args, **kwargs), h, params["heads"])
        if losses.ndim != 1:
            raise ValueError(f"head_loss must return the T task losses f32[T], got shape {losses.shape}")
        t = losses.shape[0]
        d = jax.vmap(lambda e: head_vjp(e)[0])(jnp.eye(t, dtype=losses.dtype))

        def heads(w, weight_heads):
            cot, head_grads = head_vjp(w.astype(losses.dtype))
            return cot, head_grads if weight_heads else head_vjp(jnp.ones((t,), losses.dtype))[1]
    g = jnp.zeros((t, t), jnp.float32)
    for i in reversed(range(len(layers))):
        layer, p, vjp = layers[i], trunk[i], vjps[i]
        if isinstance(layer, Dense) and _pick(route, inputs[i], d, p) == "activations":
            rows_in = jnp.reshape(inputs[i], (-1, inputs[i].shape[-1])).astype(jnp.float32)
            rows_d = jnp.reshape(d, (t, -1, d.shape[-1])).astype(jnp.float32)
            g = g + dense_gram(rows_in, rows_d)
            if "b" in p:
                sums = jnp.sum(rows_d, axis=1)
                g = g + jnp.einsum("to,so->ts", sums, sums, precision=_HIGHEST)
            if i:  # the weight gradients are never formed: XLA drops them
                d = jax.vmap(lambda c, vjp=vjp: vjp(c)[1])(d)
        elif _has_params(p):
            grads_p, d = jax.vmap(vjp)(d)
            g = g + gramian(grads_p)
        else:
            d = jax.vmap(lambda c, vjp=vjp: vjp(c)[1])(d)
    return losses, g, vjps, heads


def _stacked_heads(head_loss, h, heads, args, kwargs):
    """Each head differentiated once: the losses, the cotangents at ``h`` (``T x h``) and each
    head's gradient of its own loss."""
    sizes = {x.shape[0] for x in jax.tree.leaves(heads)}
    if len(sizes) != 1:
        raise ValueError(f"stacked_heads: every head leaf needs the same leading task axis, got sizes {sorted(sizes)}")
    t = sizes.pop()

    def one(i, head):
        loss, vjp = jax.vjp(lambda z, hp: head_loss(i, hp, z, *args, **kwargs), h, head)
        if loss.shape != ():
            raise ValueError(f"stacked_heads: head_loss(t, head, h, ...) must return a scalar, got shape {loss.shape}")
        dz, dhead = vjp(jnp.ones_like(loss))
        return loss, dz, dhead

    return jax.vmap(one)(jnp.arange(t), heads)


def layerwise_value_and_gramian(layers: Sequence[Callable[..., Any]], head_loss: Callable[..., jax.Array], *,
                                route: str = "auto", stacked_heads: bool = False) -> Callable[..., Any]:
    """``f(params, x, *args, **kwargs) -> (losses f32[T], G f32[T, T])``: the trunk's Gramian,
    layer by layer (arguments as in :func:`layerwise_weighted_value_and_grad`)."""
    layers = _check_layers(layers, route)

    def wrapped(params, x, *args, **kwargs):
        losses, g, _, _ = _forward_and_gramian(layers, head_loss, route, stacked_heads, params, x, args, kwargs)
        return losses, g

    return wrapped


def layerwise_weighted_value_and_grad(layers: Sequence[Callable[..., Any]],
                                      head_loss: Callable[..., jax.Array],
                                      weighting: Callable[[jax.Array], jax.Array], *,
                                      route: str = "auto", stacked_heads: bool = False,
                                      weight_heads: bool = False) -> Callable[..., Any]:
    """Wraps a chain of layers and ``T`` head losses into ``f(params, x, *args)``.

    Args:
      layers: the trunk, ``layers[l](params["trunk"][l], h) -> h``; a layer whose entry
        in ``params["trunk"]`` has no leaves (``()``, ``None``) is called as ``layers[l](h)``
        (an activation such as ``jax.nn.relu``). :class:`Dense` layers may use the
        activations route.
      head_loss: ``head_loss(h_L, params["heads"], *args, **kwargs) -> f32[T]``; with
        ``stacked_heads``, ``head_loss(t, head_t, h_L, *args, **kwargs) -> scalar``, task
        ``t``'s loss (``t`` traced) from its own head ``head_t`` (the slice ``t`` of every
        leaf of ``params["heads"]``, which then have a leading task axis ``T``).
      weighting: a Gramian weighting, e.g. :func:`jaxmtl.upgrad_weights`; not
        differentiated through.
      route: ``"auto"`` (per Dense layer, the route with fewer flops, see
        :func:`dense_route`), ``"activations"`` or ``"parameters"`` for every Dense layer.
      stacked_heads: each head is differentiated once (``T`` head backward passes in
        all); otherwise the ``T`` backward passes of ``head_loss`` each run through all
        heads (``T x T`` head cost and memory, as in the shared-only Jacobian).
      weight_heads: heads get the weighted gradient (default: the plain gradient of
        ``sum_t L_t``, as under :func:`jaxmtl.partition`).

    Returns:
      ``f(params, x, *args, **kwargs) -> (losses f32[T], weights f32[T], grads)`` where
      ``params = {"trunk": [p_0, ..., p_{L-1}], "heads": ...}`` and ``grads`` has the
      structure of ``params``; equal to :func:`jaxmtl.weighted_value_and_grad` of the
      composed loss with the trunk as the ``shared`` part.
    """
    layers = _check_layers(layers, route)

    def wrapped(params, x, *args, **kwargs):
        losses, g, vjps, heads = _forward_and_gramian(layers, head_loss, route, stacked_heads, params, x,
                                                      args, kwargs)
        t = losses.shape[0]
        w = jax.lax.stop_gradient(jnp.asarray(weighting(g), jnp.float32))
        if w.shape != (t,):
            raise ValueError(f"weighting returned shape {w.shape}; expected ({t},)")
        cot, head_grads = heads(w, weight_heads)
        trunk_grads = [None] * len(layers)
        for i in reversed(range(len(layers))):
            trunk_grads[i], cot = vjps[i](cot)
        return losses, w, {"trunk": type(params["trunk"])(trunk_grads), "heads": head_grads}

    return wrapped


def _pick(route: str, h: jax.Array, d: jax.Array, p: Any) -> str:
    if route != "auto":
        return route
    rows = h.size // h.shape[-1]
    w = p["w"]
    return dense_route(rows, w.shape[0], w.shape[1], d.shape[0])
