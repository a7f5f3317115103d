"""The metric protocol and the masked mean behind every task loss.

A :class:`Metric` is computed from additive sufficient statistics, so evaluation
sums them over batches (inside a jitted step) and turns the totals into a value
once at the end: ``metric.value(sum of metric.stats(pred, target, mask))``.
``higher_is_better`` feeds both delta-m conventions (:func:`jaxmtl.training.delta_m`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Metric:
    """``stats(pred, target, mask) -> pytree of sums`` (jit-able) and ``value(sums) -> float``."""

    name: str
    higher_is_better: bool
    stats: Callable[[Any, Any, Any], Any]
    value: Callable[[Any], float]

    def __call__(self, pred: Any, target: Any, mask: Any = None) -> float:
        """The metric of one batch."""
        return self.value(jax.tree.map(np.asarray, self.stats(pred, target, mask)))


def valid_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """``mask`` (``None``: everything labelled) as a bool array broadcast to ``shape``.

    A per-example mask ``(B,)`` is broadcast over the trailing (pixel) axes.
    """
    if mask is None:
        return jnp.ones(shape, bool)
    mask = jnp.asarray(mask).astype(bool)
    return jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)


def masked_mean(values: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean of ``values`` over the ``valid`` entries; exactly 0 (with zero, finite
    gradients) when none is valid, so a task without a label in a batch contributes
    nothing instead of a loss of zero *counted* over unlabelled examples."""
    values = values.astype(jnp.float32)
    total = jnp.sum(jnp.where(valid, values, 0.0))
    count = jnp.sum(valid)
    return total / jnp.maximum(count, 1).astype(jnp.float32)


def ratio(num: Any, den: Any) -> float:
    """``num / den`` as a float, NaN when ``den`` is 0 (a metric with nothing to measure)."""
    den = float(np.asarray(den))
    return float(np.asarray(num)) / den if den else float("nan")
