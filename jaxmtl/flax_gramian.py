"""The task Gramian of a Flax linen model as it is written, without its Dense layers' Jacobian.

A Gramian method needs the ``T x P`` Jacobian ``J`` of the shared parameters only
through ``G = J J^T`` and the update ``J^T w``. For a ``flax.linen`` model used
inside ``loss_fn(params, *args) -> f32[T]`` (``model.apply`` called on the
``params`` pytree it gets, as in :func:`jaxmtl.training.make_task_train_step`),
:func:`lean_jacobian` intercepts every call of an ``nn.Dense`` whose parameters
are shared (``nn.intercept_methods``: the model is not rewritten) and routes each
such layer by a flop count (:func:`jaxmtl.layerwise.dense_route` with
``combine_by_backward``):

* **activations**: the layer's input ``A`` is recorded and a zero perturbation is
  added to its output, whose ``T`` cotangents ``D_t`` come from the ``T`` backward
  passes; the layer's part of ``G`` is ``<A^T D_t, A^T D_s>`` formed from ``A A^T``
  (:func:`jaxmtl.layerwise.dense_gram`, rows of every call of the layer
  concatenated) and the bias's from the row sums of ``D_t``; its per-task weight
  gradients are never formed, and its update is the gradient of
  ``sum_t w_t L_t`` from one more backward pass of the same forward pass;
* **parameters**: its per-task gradients come from the ``T`` backward passes, as for
  every other shared leaf (convolutions, BatchNorm scales and biases, embeddings,
  parameters declared with ``self.param``): exact per-task gradients, the update
  ``sum_t w_t g_t``.

On the CPU backend every ``nn.Conv`` call (shared or not) runs with
:func:`jaxmtl.conv_vjp.conv_general_dilated` (:func:`fast_conv_backward`): the same forward value, and a backward
pass written as a forward-form convolution and one matrix product of the input's
patches, which XLA's CPU backend runs about 25x faster than ``jax.vjp``'s transposed
convolutions inside the chunked task passes (MultiLeNet, batch 32, T = 10: the UPGrad
step 4.3-5.0x the EW step instead of 45x; XLA's flop count puts any exact Gramian at
6.6x there, since each task's cotangent must pass through every convolution above the
first; ``benchmarks/RESULTS.md``). Convolutions keep per-task kernel gradients: their activations route would
need ``(B H W)^2`` products of patches, far more than ``T`` kernel gradients for the
spatial sizes of these models.

``flax.nnx`` has no method interception: an nnx model (``nnx.merge`` inside ``loss_fn``)
goes through this path as through the Jacobian path (every shared leaf gets exact
per-task gradients; no Dense layer is routed); build its convolutions with
``nnx.Conv(..., conv_general_dilated=jaxmtl.conv_vjp.conv_general_dilated)`` for the
fast backward pass.

The model runs once in training mode (BatchNorm statistics updated once per step,
as :mod:`jaxmtl.training.steps` states). When no layer takes the activations route
the result is the Jacobian path's, bit for bit. A Dense layer is recognised by its
kernel being one of the ``params`` leaves (identity of the traced arrays), so a
layer applied to other parameters is left alone; a routed layer's kernel and bias
must not be read outside its own calls.
"""
from __future__ import annotations

from jaxmtl._extras import require_extra

require_extra(__name__)

import contextlib  # noqa: E402
import functools  # noqa: E402
from typing import Any, Callable, NamedTuple  # noqa: E402

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxmtl.conv_vjp import conv_general_dilated  # noqa: E402
from jaxmtl.gramians import ScaledGramian, as_scaled, combine, gramian, scaled_gramian, update_dtype  # noqa: E402
from jaxmtl.jacobians import stacked_vjp  # noqa: E402
from jaxmtl.layerwise import ROUTES, dense_gram, dense_route  # noqa: E402
from jaxmtl.masking import Mask, resolve_mask  # noqa: E402

_HIGHEST = jax.lax.Precision.HIGHEST


class LeanJacobian(NamedTuple):
    """What a Gramian method needs of the per-task gradients, without the routed layers' Jacobian.

    Attributes:
      task_grads: the structure of ``params``; shared leaves ``(T, *shape)`` (zeros, never
        read, for the leaves of activations-routed layers), other leaves the gradient of
        ``sum_t L_t`` (as :func:`jaxmtl.value_and_jacobian` with ``shared``).
      gramian: ``G`` of the shared leaves as a :class:`jaxmtl.ScaledGramian`.
      combination: ``w -> [sum_t w_t dL_t/dtheta for every shared leaf, in tree order]``.
      routed: the number of Dense layers on the activations route (0: ``task_grads`` is
        the Jacobian path's).
    """

    task_grads: Any
    gramian: ScaledGramian
    combination: Callable[[jax.Array], list]
    routed: int


class _Layer(NamedTuple):
    kernel: int          # index of the kernel among the params leaves
    bias: int | None     # index of the bias, None without one
    outputs: tuple       # (shape, dtype) of each call's output
    width_in: int

    @property
    def rows(self) -> int:   # rows of all its calls together
        return sum(int(np.prod(shape[:-1])) for shape, _ in self.outputs)

    @property
    def width_out(self) -> int:
        return self.outputs[0][0][-1]


def _is_dense_call(context) -> bool:
    return isinstance(context.module, nn.Dense) and context.method_name == "__call__"


def _fast_conv(next_fun, a, kw, context):
    """Runs an ``nn.Conv`` call with :func:`jaxmtl.conv_vjp.conv_general_dilated` (same value; a
    backward pass that stays fast in the chunked task passes) unless it brings its own."""
    module = context.module
    if (not isinstance(module, nn.Conv) or context.method_name != "__call__"
            or getattr(module, "conv_general_dilated", False) is not None
            or getattr(module, "conv_general_dilated_cls", None)):
        return next_fun(*a, **kw)
    object.__setattr__(module, "conv_general_dilated", conv_general_dilated)   # a frozen module: for this call only
    try:
        return next_fun(*a, **kw)
    finally:
        object.__setattr__(module, "conv_general_dilated", None)


def fast_conv_backward(enabled: bool | None = None):
    """A context in which every ``flax.linen.Conv`` call runs with
    :func:`jaxmtl.conv_vjp.conv_general_dilated`: the same values, and a backward pass that XLA's
    CPU backend runs fast inside ``jax.lax.map`` (the chunked task passes of
    :func:`jaxmtl.value_and_jacobian` too: the MultiLeNet's Jacobian+mean step at T = 10 took
    65 ms with it, 551 ms without, ``benchmarks/RESULTS.md``). The lean path and
    :func:`jaxmtl.training.make_task_train_step` trace their models in it. Reverse mode only:
    ``jax.jvp`` of a model traced in it raises ``TypeError`` (Hessian-vector products, ``jax.jvp``
    of ``jax.grad``, work; :mod:`jaxmtl.conv_vjp`). It acts when a model is traced: a ``jax.jit``
    function first called in it keeps its convolutions when called outside it, and the reverse.

    ``enabled=None`` (default): on the CPU backend only. The slow loop convolutions are XLA
    CPU's, while the patches this backward pass keeps cost ``prod(window)`` times each
    convolution's input in memory, which an accelerator's larger models (a DeepLab at
    256 x 512) should not pay for nothing.

    >>> import flax.linen as nn, jax, jax.numpy as jnp
    >>> conv = nn.Conv(2, (3, 3))
    >>> x = jnp.ones((1, 5, 5, 1))
    >>> params = conv.init(jax.random.PRNGKey(0), x)
    >>> with fast_conv_backward():
    ...     y = conv.apply(params, x)
    >>> bool(jnp.all(y == conv.apply(params, x)))
    True
    """
    if enabled is None:
        enabled = jax.default_backend() == "cpu"
    return nn.intercept_methods(_fast_conv) if enabled else contextlib.nullcontext()


def _leaf_index(context, name: str, index: dict[int, int]) -> int | None:
    if not context.module.has_variable("params", name):
        return None
    return index.get(id(context.module.get_variable("params", name)))


def _run(loss_fn, params, args, kwargs, has_aux, interceptor):
    with nn.intercept_methods(interceptor):
        out = loss_fn(params, *args, **kwargs)
    losses, aux = out if has_aux else (out, None)
    losses = jnp.asarray(losses)
    if losses.ndim != 1:
        raise ValueError(f"loss_fn must return a 1-D array of task losses, got shape {losses.shape}")
    return losses, aux


def _dense_layers(loss_fn, params, args, kwargs, has_aux, mask) -> tuple[int, dict[int, _Layer]]:
    """An abstract run of ``loss_fn``: ``T`` and the Dense layers with shared parameters."""
    found: dict[int, _Layer] = {}

    def run(p):
        leaves = jax.tree.leaves(p)
        index = {id(x): i for i, x in enumerate(leaves) if mask[i]}

        def record(next_fun, a, kw, context):
            out = next_fun(*a, **kw)
            if _is_dense_call(context):
                k, b = _leaf_index(context, "kernel", index), _leaf_index(context, "bias", index)
                if k is not None and (b is not None or not context.module.use_bias):
                    calls = found[k].outputs if k in found else ()
                    found[k] = _Layer(k, b, (*calls, (out.shape, out.dtype)), a[0].shape[-1])
            return out

        return _run(loss_fn, p, args, kwargs, has_aux, record)[0]

    return jax.eval_shape(run, params).shape[0], found


def lean_jacobian(loss_fn: Callable[..., Any], *, has_aux: bool = False, shared: Mask = None,
                  route: str = "auto", chunk_size: int | str | None = "auto",
                  fast_convolutions: bool | None = None) -> Callable[..., Any]:
    """Wraps ``loss_fn(params, *args) -> f32[T]`` into ``(value, LeanJacobian)``.

    Args:
      loss_fn: task losses of a Flax linen model applied to ``params`` (``(losses, aux)``
        with ``has_aux``; ``aux`` comes from the one forward pass, e.g. new ``batch_stats``).
      shared: the shared leaves (see :mod:`jaxmtl.masking`); ``None``: every leaf.
      route: ``"auto"`` (per Dense layer, the route with fewer flops), ``"activations"``
        or ``"parameters"`` (every Dense layer: exactly the Jacobian path).
      chunk_size: backward passes per batch, as in :func:`jaxmtl.value_and_jacobian`.
      fast_convolutions: ``enabled`` of :func:`fast_conv_backward` (``None``: on CPU).

    Returns:
      ``f(params, *args, **kwargs) -> (value, LeanJacobian)``, ``value`` the losses (or
      ``(losses, aux)``).
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kwargs):
        mask = jax.tree.leaves(resolve_mask(shared, params))
        leaves, treedef = jax.tree.flatten(params)
        if not any(mask):
            raise ValueError("shared mask selects no leaf: there is no Gramian to form")
        t, layers = _dense_layers(loss_fn, params, args, kwargs, has_aux, mask)
        if route != "auto":
            chosen = [ly for ly in layers.values() if route == "activations"]
        else:
            chosen = [ly for ly in layers.values()
                      if dense_route(ly.rows, ly.width_in, ly.width_out, t, combine_by_backward=True) == "activations"]
        routed_leaves = sorted({i for ly in chosen for i in (ly.kernel, ly.bias) if i is not None})
        routed_set = set(routed_leaves)
        free = [i for i in range(len(leaves)) if i not in routed_set]
        free_shared = [k for k, i in enumerate(free) if mask[i]]
        free_other = [k for k, i in enumerate(free) if not mask[i]]
        order = {ly.kernel: n for n, ly in enumerate(chosen)}

        def f(free_leaves, routed, eps):
            full = [None] * len(leaves)
            for i, x in zip(free, free_leaves):
                full[i] = x
            for i, x in zip(routed_leaves, routed):
                full[i] = x
            index = {id(x): i for i, x in zip(routed_leaves, routed)}
            inputs: list = [[] for _ in chosen]
            calls = [0] * len(chosen)

            def perturb(next_fun, a, kw, context):
                out = next_fun(*a, **kw)
                k = _leaf_index(context, "kernel", index) if _is_dense_call(context) else None
                if k is None:
                    return out
                n = order[k]
                inputs[n].append(a[0])
                out = out + eps[n][calls[n]]
                calls[n] += 1
                return out

            with fast_conv_backward(fast_convolutions):
                losses, aux = _run(loss_fn, jax.tree.unflatten(treedef, full), args, kwargs, has_aux, perturb)
            return losses, (aux, inputs)

        eps = [[jnp.zeros(shape, dtype) for shape, dtype in ly.outputs] for ly in chosen]
        losses, vjp_fn, (aux, inputs) = jax.vjp(
            f, [leaves[i] for i in free], [leaves[i] for i in routed_leaves], eps, has_aux=True)

        def back(c):
            g_free, _, g_eps = vjp_fn(c)
            return [g_free[k] for k in free_shared], g_eps

        stacked, cot = stacked_vjp(back, t, losses.dtype, chunk_size)
        if chosen:
            g = gramian(stacked) if stacked else jnp.zeros((t, t), jnp.float32)
            for n, ly in enumerate(chosen):
                g = g + _layer_gram(inputs[n], cot[n], ly.bias is not None)
            gram = as_scaled(g)
        else:
            gram = scaled_gramian(stacked)
        ones = jnp.ones((t,), losses.dtype)
        other = vjp_fn(ones)[0]

        def combination(w):
            w = jnp.asarray(w, jnp.float32)
            by_leaf = dict(zip([free[k] for k in free_shared], combine(w, stacked)))
            if chosen:
                g_routed = vjp_fn(w.astype(losses.dtype))[1]
                by_leaf.update((i, x.astype(update_dtype(x.dtype))) for i, x in zip(routed_leaves, g_routed))
            return [by_leaf[i] for i in range(len(leaves)) if mask[i]]

        out = [None] * len(leaves)
        for k, x in zip(free_shared, stacked):
            out[free[k]] = x
        for k in free_other:
            out[free[k]] = other[k]
        for i in routed_leaves:
            out[i] = jnp.zeros((t, *jnp.shape(leaves[i])), jnp.result_type(leaves[i]))
        value = (losses, aux) if has_aux else losses
        return value, LeanJacobian(jax.tree.unflatten(treedef, out), gram, combination, len(chosen))

    return wrapped


def _layer_gram(inputs: list, cots: list, bias: bool) -> jax.Array:
    """A Dense layer's part of ``G`` from its calls' inputs and output cotangents ``(T, *out)``."""
    t = cots[0].shape[0]
    rows_in = jnp.concatenate([jnp.reshape(a, (-1, a.shape[-1])) for a in inputs]).astype(jnp.float32)
    rows_d = jnp.concatenate([jnp.reshape(d, (t, -1, d.shape[-1])) for d in cots], axis=1).astype(jnp.float32)
    g = dense_gram(rows_in, rows_d)
    if bias:
        sums = jnp.sum(rows_d, axis=1)
        g = g + jnp.einsum("to,so->ts", sums, sums, precision=_HIGHEST)
    return g


def value_and_gramian(loss_fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``f(params, *args) -> (value, G f32[T, T])``: the shared leaves' task Gramian
    (arguments as :func:`lean_jacobian`)."""
    lean = lean_jacobian(loss_fn, **kwargs)

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kw):
        value, lj = lean(params, *args, **kw)
        return value, lj.gramian.gram * lj.gramian.scale**2

    return wrapped


def weighted_value_and_grad(loss_fn: Callable[..., Any], weighting: Callable[[Any], jax.Array],
                            **kwargs: Any) -> Callable[..., Any]:
    """``f(params, *args) -> (value, weights, grads)`` as :func:`jaxmtl.weighted_value_and_grad`
    for a Flax model: ``weights = weighting(G)`` (``G`` a :class:`jaxmtl.ScaledGramian`, not
    differentiated through), shared leaves get ``sum_t w_t dL_t/dtheta``, the others the
    gradient of ``sum_t L_t`` (as under :func:`jaxmtl.partition`). Other arguments as
    :func:`lean_jacobian`."""
    lean = lean_jacobian(loss_fn, **kwargs)
    shared = kwargs.get("shared")

    @functools.wraps(loss_fn)
    def wrapped(params, *args, **kw):
        value, lj = lean(params, *args, **kw)
        t = lj.gramian.gram.shape[0]
        w = jax.lax.stop_gradient(jnp.asarray(weighting(lj.gramian), jnp.float32))
        if w.shape != (t,):
            raise ValueError(f"weighting returned shape {w.shape}; expected ({t},)")
        mask = jax.tree.leaves(resolve_mask(shared, params))
        shared_grads = iter(lj.combination(w))
        leaves, treedef = jax.tree.flatten(lj.task_grads)
        return value, w, jax.tree.unflatten(treedef, [next(shared_grads) if m else x
                                                      for m, x in zip(mask, leaves)])

    return wrapped
