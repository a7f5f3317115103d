"""Gradient coherence and the alignment of task gradients with the applied update (Paper B).

*Coherence* (Chatterjee 2020, "Coherent Gradients"; Chatterjee & Zielinski 2020,
"Making Coherence Out of Nothing At All") of per-example gradients ``g_1 .. g_S``:

    alpha = |mean_i g_i|^2 / mean_i |g_i|^2  in [0, 1],

1 when all gradients are equal, ``1/S`` when they are orthogonal with equal norms
(Chatterjee & Zielinski's reference ``alpha_perp``), 0 when they cancel.
Large coherence means a step on one example helps the others.

*Update cosines*: per task, the cosine between the task's descent direction and
the update the optimizer applied, positive when the step decreases the task's
loss to first order and negative when the task is in conflict with it; Mueller
et al. (2024) correlate it with the task's optimization deficit.
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.analysis._examples import mean_and_spread, per_task, scaled_examples
from jaxmtl.gramians import num_tasks

CONVENTIONS = ("step", "gradient")


def gradient_coherence(per_example_grads: Any, *, task_axis: bool = False) -> jax.Array:
    """``alpha = |gbar|^2 / mean_i |g_i|^2`` of per-example gradients.

    Layout as in :func:`jaxmtl.analysis.fisher_trace`: leaves ``(S, *param.shape)``
    (scalar result) or ``(S, T, *param.shape)`` with ``task_axis=True`` (``(T,)``,
    each task's examples on their own). Computed as
    ``|gbar|^2 / (|gbar|^2 + (1/S) sum_i |g_i - gbar|^2)`` (the same ratio, in
    ``[0, 1]`` by construction) on gradients divided by each task's largest
    entry: accurate for gradients from 1e-30 to 1e30 and in bfloat16. One
    example gives 1 (0 if its gradient is zero); all-zero gradients give 0
    (their mean is zero, as for cancelling gradients); NaN only from NaN
    input. Jit-compatible.
    """
    x = scaled_examples(per_example_grads, task_axis)
    mean_sq, spread = mean_and_spread(x.blocks)
    total = mean_sq + spread / x.examples  # mean_i |g_i|^2
    alpha = jnp.where(total > 0, mean_sq / jnp.where(total > 0, total, 1.0), 0.0)
    alpha = jnp.where(jnp.isnan(total), jnp.nan, alpha)  # NaN input stays visible
    return per_task(jnp.clip(alpha, 0.0, 1.0), task_axis)


def update_cosines(task_grads: Any, update: Any, *, convention: str = "step") -> jax.Array:
    """Per task, the cosine of its gradient's descent direction with ``update``, ``(T,)``.

    ``task_grads``: stacked task gradients (leaves ``(T, *param.shape)``, as
    :func:`jaxmtl.value_and_jacobian` gives them); ``update``: a pytree shaped like
    the parameters. ``convention="step"`` (default): ``update`` is what optax
    returns and :func:`optax.apply_updates` adds to the parameters (plain gradient
    descent gives ``-lr * g``), and the result is ``cos(-g_t, update)``.
    ``convention="gradient"``: ``update`` points like a gradient (e.g. a jaxmtl
    aggregator's output before the optimizer), and the result is
    ``cos(g_t, update)``. Either way a positive cosine means the step lowers task
    ``t``'s loss to first order, a negative one is a conflict.

    A zero vector (task gradient or update) has no direction: its cosine is 0
    (NaN only from NaN input).
    Each task's gradient and the update are divided by their largest entry
    first, so any scale and bfloat16 work; computed in float32. Shapes are
    checked at trace time (``ValueError``). Jit-compatible.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    t = num_tasks(task_grads, params=update)
    dtype = jnp.result_type(jnp.float32, *jax.tree.leaves(task_grads), *jax.tree.leaves(update))
    g = [jnp.reshape(jnp.asarray(x, dtype), (t, math.prod(jnp.shape(x)[1:])))
         for x in jax.tree.leaves(task_grads)]
    u = [jnp.reshape(jnp.asarray(x, dtype), (math.prod(jnp.shape(x)),)) for x in jax.tree.leaves(update)]
    safe = lambda p: jnp.where(jnp.isfinite(p) & (p > 0), p, 1.0)
    g_peak = safe(jnp.max(jnp.stack([jnp.max(jnp.abs(x), axis=1, initial=0.0) for x in g]), axis=0))
    u_peak = safe(jnp.max(jnp.stack([jnp.max(jnp.abs(x), initial=0.0) for x in u])))
    g = [x / g_peak[:, None] for x in g]
    u = [x / u_peak for x in u]
    dot = sum(jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST) for x, y in zip(g, u))
    g_norm = jnp.sqrt(sum(jnp.sum(jnp.square(x), axis=1) for x in g))
    u_norm = jnp.sqrt(sum(jnp.sum(jnp.square(y)) for y in u))
    denom = g_norm * u_norm
    cos = jnp.where(denom > 0, dot / jnp.where(denom > 0, denom, 1.0), 0.0)
    cos = jnp.where(jnp.isnan(dot) | jnp.isnan(denom), jnp.nan, cos)  # NaN input stays visible
    return jnp.clip(-cos if convention == "step" else cos, -1.0, 1.0)
