"""Wrappers around a whole chain that keep the task axis: skip non-finite steps, accumulate.

``optax.apply_if_finite`` and ``optax.MultiSteps`` assume parameter-shaped
gradients; a chain that starts with a jaxmtl method takes stacked per-task
gradients ``(T, *param.shape)``. These are their counterparts (a jaxmtl method
used inside the optax ones raises a ``ValueError`` naming them):

* :func:`skip_nonfinite`: skips a step whose inputs (task gradients, losses,
  extra arguments) or update are not finite, for the whole chain: every state
  (the method's, Adam's, ...) is kept as it was and the update is zero.
* :func:`multi_steps`: averages the task Jacobians (and the losses) over
  ``every_k`` micro-batches and runs the chain on the mean once per ``every_k``
  calls. For a non-linear method this is the right semantics of gradient
  accumulation: the method sees the Jacobian of the large batch, not an
  average of its updates on small ones.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check, task_count
from jaxmtl.masking import Mask, resolve_mask
from jaxmtl.protocol import all_finite


class SkipNonfiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`."""

    inner: Any              # the wrapped chain's state
    skipped: jax.Array      # i32[]: steps skipped so far
    consecutive: jax.Array  # i32[]: steps skipped in a row up to now (0 after a finite step)


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Skips, for the whole chain ``inner``, a step with non-finite input or output.

    A step is skipped when any floating entry of the task gradients, of the
    extra arguments (``losses``, ``extra_task_grads``, ...) or of the update is
    NaN or infinite: the update is zero and ``inner``'s state is kept, so one bad
    batch corrupts neither the method's learned state nor the optimiser's
    moments. ``state.skipped`` counts the skipped steps and
    ``state.consecutive`` the current run of them (stop training when it grows).

    Args:
      inner: the transformation to protect, typically
        ``optax.chain(jaxmtl.partition(method, shared), optax.adam(lr))``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`SkipNonfiniteState`.
    """
    inner = optax.with_extra_args_support(inner)

    def init(params):
        zero = jnp.zeros((), jnp.int32)
        return SkipNonfiniteState(inner.init(params), zero, zero)

    def update(task_grads, state, params=None, **extra):
        updates, new_inner = inner.update(task_grads, state.inner, params, **extra)
        ok = all_finite((task_grads, extra, updates))
        kept = jax.tree.map(lambda new, old: jnp.where(ok, new, old).astype(jnp.result_type(old)),
                            new_inner, state.inner)
        updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
        miss = jnp.where(ok, 0, 1).astype(jnp.int32)
        return updates, SkipNonfiniteState(kept, state.skipped + miss, (state.consecutive + miss) * miss)

    return optax.GradientTransformationExtraArgs(init, update)


class MultiStepsState(NamedTuple):
    """State of :func:`multi_steps`."""

    mini_step: jax.Array    # i32[]: micro-batches accumulated since the last update
    grads: Any              # the running mean of the task gradients (f32; shared leaves stacked)
    losses: jax.Array       # f32[T]: the running mean of the losses
    inner: Any              # the wrapped chain's state


def multi_steps(inner: optax.GradientTransformation, every_k: int, *, num_tasks: int,
                shared: Mask = None) -> optax.GradientTransformationExtraArgs:
    """Accumulates task Jacobians over ``every_k`` micro-batches, then runs ``inner`` on their mean.

    Each call adds one micro-batch's stacked task gradients (and ``losses``, if
    given) to running means kept in the state and returns a zero update; every
    ``every_k``-th call passes the means to ``inner`` (a chain that starts with a
    jaxmtl method, e.g. ``optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared),
    optax.adam(lr))``) and returns its update. Other extra arguments are those
    of the last micro-batch. The accumulator costs one Jacobian's memory in
    float32.

    Args:
      inner: the chain to run on the accumulated Jacobian.
      every_k: micro-batches per update (``>= 1``).
      num_tasks: the number of tasks ``T`` (the accumulator is stacked).
      shared: the shared-parameter mask of the stacked leaves, as given to
        :func:`jaxmtl.value_and_jacobian` and :func:`jaxmtl.partition` (``None``:
        every leaf is stacked); the other leaves are accumulated with their own
        shape.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`MultiStepsState`.
    """
    check("every_k", every_k, lambda v: (v >= 1) & (v == int(v)), "a positive integer")
    t = task_count(num_tasks, "multi_steps", "its accumulator has a task axis")
    inner = optax.with_extra_args_support(inner)

    def accumulator(params):
        mask = resolve_mask(shared, params)
        return jax.tree.map(lambda m, p: jnp.zeros(((t,) if m else ()) + jnp.shape(p), jnp.float32),
                            mask, params)

    def init(params):
        return MultiStepsState(jnp.zeros((), jnp.int32), accumulator(params),
                               jnp.zeros((t,), jnp.float32), inner.init(params))

    def update(task_grads, state, params=None, *, losses=None, **extra):
        same = jax.tree.structure(task_grads) == jax.tree.structure(state.grads) and all(
            jnp.shape(g) == jnp.shape(a)
            for g, a in zip(jax.tree.leaves(task_grads), jax.tree.leaves(state.grads)))
        if not same:
            expected = jax.tree.map(jnp.shape, state.grads)
            raise ValueError(f"multi_steps: task_grads do not have the accumulator's shapes {expected} "
                             "(shared leaves (T, *param.shape), the others param.shape; check "
                             "num_tasks and shared)")
        n = state.mini_step.astype(jnp.float32)
        mean = jax.tree.map(lambda a, g: a + (g.astype(jnp.float32) - a) / (n + 1), state.grads, task_grads)
        mean_losses = state.losses if losses is None else \
            state.losses + (jnp.asarray(losses, jnp.float32) - state.losses) / (n + 1)
        emit = state.mini_step == every_k - 1
        grads = jax.tree.map(lambda m, g: m.astype(g.dtype), mean, task_grads)
        kwargs = dict(extra) if losses is None else {**extra, "losses": mean_losses}

        def run():
            return inner.update(grads, state.inner, params, **kwargs)

        def wait():
            shapes = jax.eval_shape(run)[0]
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), state.inner

        updates, inner_state = jax.lax.cond(emit, run, wait)
        reset = lambda x: jnp.where(emit, jnp.zeros_like(x), x)
        return updates, MultiStepsState(jnp.where(emit, 0, state.mini_step + 1).astype(jnp.int32),
                                        jax.tree.map(reset, mean), reset(mean_losses), inner_state)

    return optax.GradientTransformationExtraArgs(init, update)
