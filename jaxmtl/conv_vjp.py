"""A channels-last convolution whose backward pass stays fast when it runs ``T`` times.

The task Jacobian's ``T`` backward passes run in chunks (``jax.lax.map``, see
:func:`jaxmtl.jacobians.stacked_vjp`). XLA's CPU backend runs the convolutions
that ``jax.vjp`` derives from a forward convolution (the input cotangent, a
convolution with swapped kernel dimensions; the kernel gradient, a convolution
with the batch as its contracting dimension) far slower inside such a loop than
at the top level (on the MultiLeNet's second convolution, batch 32, 10 tasks,
2 CPU cores: 679-796 ms in a loop against 24 ms as one vmap and 42 ms written
out; ``benchmarks/RESULTS.md``). :func:`conv` computes the
same forward value with ``jax.lax.conv_general_dilated`` and derives its backward
pass by hand, in forms that stay fast there (32 ms in the same loop):

* input cotangent: a forward convolution (``NHWC`` / ``HWIO``) of the output
  cotangent, dilated by the strides, with the kernel flipped in space and its
  input and output channels swapped;
* kernel gradient: one matrix product of the input's patches (strided slices of
  the padded input, formed once in the forward pass) with the output cotangent,
  so ``T`` cotangents batched together make one wider product.

Both are exact rewrites of the convolution's transpose (the input cotangent equal
to ``jax.vjp``'s in the tests, the kernel gradient up to float rounding). The
patches cost ``prod(window)`` times the input's memory until the backward pass.
Supported: any number of spatial dimensions, strides, explicit or
``'SAME'``/``'VALID'`` padding, kernel dilation; not input dilation or feature
groups (:func:`supports` says which calls qualify). An empty output (an empty
batch, a window wider than the padded input) is ``jax.lax``'s own.

Reverse mode only (a ``jax.custom_vjp``): ``jax.jvp``, ``jax.jacfwd`` and
``jax.linearize`` of :func:`conv` raise ``TypeError``, while ``jax.grad`` of
``jax.grad``, ``jax.hessian`` and Hessian-vector products (``jax.jvp`` of
``jax.grad``, as :mod:`jaxmtl.analysis.sharpness` takes them) work.
"""
from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp


def _channels_last(nd: int) -> tuple[str, str, str]:
    """``("NHWC", "HWIO", "NHWC")`` for ``nd`` spatial dimensions (any letters but N, C, I, O)."""
    spatial = "ABDEFGHJKLM"[:nd]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


def supports(lhs_shape: Sequence[int], dimension_numbers, lhs_dilation, feature_group_count: int) -> bool:
    """Whether a ``jax.lax.conv_general_dilated`` call has the form :func:`conv` computes:
    channels-last input and output, kernel ``(*window, in, out)``, no input dilation,
    one feature group."""
    nd = len(lhs_shape) - 2
    shapes = (tuple(lhs_shape), (1,) * (nd + 2))
    numbers = jax.lax.conv_dimension_numbers(*shapes, dimension_numbers)
    return (numbers == jax.lax.conv_dimension_numbers(*shapes, _channels_last(nd)) and feature_group_count == 1
            and all(d == 1 for d in (lhs_dilation or (1,) * nd)))


def conv(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding, rhs_dilation=None,
         precision=None) -> jax.Array:
    """``jax.lax.conv_general_dilated(lhs, rhs, ...)`` for ``lhs (N, *spatial, C)`` and
    ``rhs (*window, C, O)``, with the backward pass described in the module docstring."""
    nd = lhs.ndim - 2
    window = rhs.shape[:nd]
    dilation = tuple(rhs_dilation or (1,) * nd)
    strides = tuple(window_strides)
    if isinstance(padding, str):
        effective = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
        padding = jax.lax.padtype_to_pads(lhs.shape[1:-1], effective, strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if lhs.shape[0] == 0 or 0 in _out_shape(lhs.shape[1:-1], window, strides, pads, dilation):
        return _forward(strides, pads, dilation, precision, lhs, rhs)   # an empty output: no patches to form
    return _conv(strides, pads, dilation, precision, tuple(lhs.shape[1:-1]), lhs, rhs)


def _out_shape(size, window, strides, pads, dilation) -> list[int]:
    """The output's spatial shape (0 where the dilated window is wider than the padded input)."""
    return [max(0, (n + lo + hi - (k - 1) * d - 1) // s + 1)
            for n, k, s, (lo, hi), d in zip(size, window, strides, pads, dilation)]


def _forward(strides, pads, dilation, precision, lhs, rhs):
    return jax.lax.conv_general_dilated(lhs, rhs, strides, pads, rhs_dilation=dilation,
                                        dimension_numbers=_channels_last(lhs.ndim - 2), precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4))
def _conv(strides, pads, dilation, precision, size, lhs, rhs):
    return _forward(strides, pads, dilation, precision, lhs, rhs)


def _patches(lhs, window, strides, pads, dilation):
    """``(N, *out, prod(window) * C)``: each output position's input window, ordered as a
    ``(*window, C)`` kernel (slices of the padded input: no arithmetic)."""
    padded = jax.lax.pad(lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), *[(lo, hi, 0) for lo, hi in pads], (0, 0, 0)])
    out = _out_shape(lhs.shape[1:-1], window, strides, pads, dilation)
    views = []
    for offset in itertools.product(*[range(k) for k in window]):
        start = [i * d for i, d in zip(offset, dilation)]
        stop = [i + (o - 1) * s + 1 for i, o, s in zip(start, out, strides)]
        views.append(jax.lax.slice(padded, (0, *start, 0), (padded.shape[0], *stop, padded.shape[-1]),
                                   (1, *strides, 1)))
    return jnp.reshape(jnp.stack(views, axis=-2), (padded.shape[0], *out, -1))


def _conv_fwd(strides, pads, dilation, precision, size, lhs, rhs):
    patches = _patches(lhs, rhs.shape[:lhs.ndim - 2], strides, pads, dilation)
    return _forward(strides, pads, dilation, precision, lhs, rhs), (patches, rhs)


def _conv_bwd(strides, pads, dilation, precision, size, res, ct):
    patches, rhs = res
    nd = ct.ndim - 2
    window, o = rhs.shape[:nd], rhs.shape[-1]
    flipped = jnp.swapaxes(jnp.flip(rhs, tuple(range(nd))), -1, -2)
    back_pads = []
    for n, k, d, s, (lo, _), out in zip(size, window, dilation, strides, pads, ct.shape[1:-1]):
        reach = (k - 1) * d
        back_pads.append((reach - lo, n - 1 - (out - 1) * s + lo))
    d_lhs = jax.lax.conv_general_dilated(ct, flipped, (1,) * nd, back_pads, lhs_dilation=strides,
                                         rhs_dilation=dilation, dimension_numbers=_channels_last(nd),
                                         precision=precision)
    flat = jnp.reshape(patches, (-1, patches.shape[-1]))
    d_rhs = jnp.reshape(jnp.matmul(flat.T, jnp.reshape(ct, (-1, o)), precision=precision), rhs.shape)
    return d_lhs.astype(ct.dtype), d_rhs.astype(rhs.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """A drop-in for ``jax.lax.conv_general_dilated`` in reverse mode (see the module docstring):
    :func:`conv` where :func:`supports` says so (and no other keyword is given),
    ``jax.lax.conv_general_dilated`` itself otherwise.
    For example ``flax.linen.Conv(..., conv_general_dilated=conv_general_dilated)``."""
    if kwargs or not supports(lhs.shape, dimension_numbers, lhs_dilation, feature_group_count):
        return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                            feature_group_count=feature_group_count, precision=precision, **kwargs)
    return conv(lhs, rhs, window_strides, padding, rhs_dilation, precision)
