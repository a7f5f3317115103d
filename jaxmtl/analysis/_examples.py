"""Per-example gradients as scaled float32 blocks, shared by the Fisher, noise-scale and
coherence statistics.

A per-example gradient pytree has, on every leaf, a leading example axis ``S``
(leaf ``(S, *param.shape)``), and with ``task_axis`` a task axis ``T`` after it
(leaf ``(S, T, *param.shape)``, the layout of
:func:`jaxmtl.analysis.per_sample_jacobian`, whose ``(S, T, P)`` array is a
one-leaf pytree). Each task's entries are divided by that task's largest
absolute entry, so squared norms neither overflow nor underflow and tasks of
very different scales keep their own accuracy.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Scaled(NamedTuple):
    blocks: list  # float (S, T, n) per leaf, divided by `peak`
    peak: jax.Array  # (T,) each task's largest absolute entry (1 where it is 0 or not finite)
    examples: int  # S
    tasks: int  # T (1 without a task axis)


def scaled_examples(per_example_grads: Any, task_axis: bool) -> Scaled:
    """Validates the layout (``ValueError`` at trace time) and returns the scaled blocks."""
    leaves = jax.tree_util.tree_leaves_with_path(per_example_grads)
    if not leaves:
        raise ValueError("per_example_grads has no leaves")
    lead = 2 if task_axis else 1
    layout = "(S, T, *param.shape)" if task_axis else "(S, *param.shape)"
    axes = "example and task axes (S, T)" if task_axis else "example axis S"
    heads = {}
    for path, leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) < lead:
            raise ValueError(f"per_example_grads leaf {jax.tree_util.keystr(path)} has shape {shape}; "
                             f"every leaf needs the layout {layout}")
        heads.setdefault(shape[:lead], jax.tree_util.keystr(path))
    if len(heads) > 1:
        desc = ", ".join(f"{p} has {h}" for h, p in heads.items())
        raise ValueError(f"per_example_grads leaves disagree on their leading {axes}: {desc}")
    (head,) = heads
    s, t = head[0], (head[1] if task_axis else 1)
    if s == 0:
        raise ValueError("per_example_grads has no example (S = 0)")
    dtype = jnp.result_type(jnp.float32, *[leaf for _, leaf in leaves])
    blocks = [jnp.reshape(jnp.asarray(leaf, dtype), (s, t, math.prod(jnp.shape(leaf)[lead:])))
              for _, leaf in leaves]
    peak = jnp.max(jnp.stack([jnp.max(jnp.abs(b), axis=(0, 2), initial=0.0) for b in blocks]), axis=0)
    peak = jnp.where(jnp.isfinite(peak) & (peak > 0), peak, 1.0)
    return Scaled([b / peak[:, None] for b in blocks], peak, s, t)


def squared_norms(blocks: list) -> jax.Array:
    """Per-example, per-task squared norms ``(S, T)`` of scaled blocks."""
    return sum(jnp.sum(jnp.square(b), axis=2) for b in blocks)


def mean_and_spread(blocks: list) -> tuple[jax.Array, jax.Array]:
    """``(|mean_i v_i|^2, sum_i |v_i - mean|^2)`` per task, each ``(T,)``, two-pass (centred)."""
    means = [jnp.mean(b, axis=0) for b in blocks]
    mean_sq = sum(jnp.sum(jnp.square(m), axis=1) for m in means)
    spread = sum(jnp.sum(jnp.square(b - m[None]), axis=(0, 2)) for b, m in zip(blocks, means))
    return mean_sq, spread


def rescale(x: jax.Array, peak: jax.Array) -> jax.Array:
    """A scaled squared quantity back in the gradients' units: ``(x * peak) * peak``
    (inf, not NaN, where the true value exceeds the float range)."""
    return (x * peak) * peak


def per_task(x: jax.Array, task_axis: bool) -> jax.Array:
    return x if task_axis else x[0]
