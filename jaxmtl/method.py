"""The method protocol: a weighting of the tasks, turned into an optax transformation.

Every jaxmtl method computes task weights ``w`` (from the Gramian, the losses,
its state, ...) and returns ``update = sum_t w_t g_t``. :func:`weighted_method`
does the shared work once: validation of the stacked input, the (scaled)
Gramian, the combination, and recording the weights in the state.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import combine, num_tasks as _num_tasks, scale_gramian, scaled_gramian


class MethodState(NamedTuple):
    """State of every jaxmtl method.

    Attributes:
      inner: the method's own state (PRNG key, EMAs, warm starts, ...), or ``()``.
      weights: ``f32[T]``, the task weights of the last update, when the method was
        built with ``num_tasks``; ``None`` otherwise (the state must keep a fixed
        structure under ``jit``/``lax.scan`` and ``T`` is unknown at ``init``).
    """

    inner: Any
    weights: Any


WeightFn = Callable[..., tuple[Any, Any]]


def weighted_method(weight_fn: WeightFn, *, name: str, num_tasks: int | None = None,
                    init_inner: Callable[[], Any] = tuple, uses_gramian: bool = True,
                    needs_losses: bool = False) -> optax.GradientTransformationExtraArgs:
    """Builds a method from ``weight_fn(G, inner, *, t, scale, losses, extra) -> (w, inner)``.

    ``G`` is the Gramian of the task gradients divided by ``scale**2`` (so it is
    finite for any gradient scale; ``G_true = scale**2 * G``), or ``None`` when
    ``uses_gramian`` is false; ``t`` the number of tasks; ``grads`` the stacked
    gradients themselves (for methods that need more than inner products). ``losses`` is the ``losses`` extra argument (checked
    to have shape ``(T,)``), ``extra`` the other extra arguments.
    """

    def init(params):
        del params
        weights = None if num_tasks is None else jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32)
        return MethodState(init_inner(), weights)

    def update(task_grads, state, params=None, *, losses=None, **extra):
        t = _num_tasks(task_grads, params=params, losses=losses, expected=num_tasks)
        if needs_losses and losses is None:
            raise ValueError(f"{name} needs the task losses: pass them as "
                             "tx.update(task_grads, state, params, losses=losses)")
        if losses is not None:
            losses = jnp.asarray(losses, jnp.float32)
        override = extra.pop("gramian", None)
        if not uses_gramian:
            g, scale = None, None
        elif override is not None:
            g, scale = scale_gramian(override, t)
        else:
            g, scale = scaled_gramian(task_grads)
        w, inner = weight_fn(g, state.inner, t=t, scale=scale, losses=losses, extra=extra,
                             grads=task_grads)
        w = jnp.asarray(w, jnp.float32)
        # the state keeps its dtypes (with jax_enable_x64 a float32 state would otherwise
        # come back float64 and break lax.scan and jit caches)
        inner = jax.tree.map(_keep_dtype, inner, state.inner)
        recorded = None if num_tasks is None else w
        return combine(w, task_grads), MethodState(inner, recorded)

    return optax.GradientTransformationExtraArgs(init, update)


def _keep_dtype(new, old):
    new = jnp.asarray(new)
    return new.astype(old.dtype) if jnp.issubdtype(old.dtype, jnp.floating) else new


def stateless(weighting: Callable[[Any], Any]) -> WeightFn:
    """Adapts a pure Gramian weighting ``G -> w`` to the ``weight_fn`` signature."""

    def weight_fn(g, inner, **_):
        return weighting(g), inner

    return weight_fn
