"""Scalar regression (QM9 targets): squared-error loss on normalised targets, MAE in the
original units.

Targets are normalised as ``(y - mean) / std`` by the loader; :func:`mae` takes
``std`` and reports ``mean |pred - target| * std`` (the de-normalised MAE, lower
is better). A per-example ``mask`` marks the labelled examples.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask


def _align(pred, target):
    target = jnp.asarray(target, jnp.float32)
    return jnp.asarray(pred, jnp.float32).reshape(target.shape), target


def squared_error(pred: jax.Array, target: jax.Array, mask=None) -> jax.Array:
    """Mean squared error over labelled examples (preds ``(B,)`` or ``(B, 1)``)."""
    pred, target = _align(pred, target)
    return masked_mean((pred - target) ** 2, valid_mask(mask, target.shape))


def mae(std: float = 1.0) -> Metric:
    """Mean absolute error times ``std`` (the target's normalisation scale; lower is better)."""
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")

    def stats(pred, target, mask):
        pred, target = _align(pred, target)
        valid = valid_mask(mask, target.shape)
        return {"sum": jnp.sum(jnp.where(valid, jnp.abs(pred - target), 0.0)) * std, "count": jnp.sum(valid)}

    return Metric("mae", False, stats, lambda s: ratio(s["sum"], s["count"]))


def reconstruction_error() -> Metric:
    """Per-pixel mean squared error of a reconstructed image, averaged over labelled examples
    (lower is better; paper C's Multi-MNIST reconstruction metric)."""

    def stats(pred, target, mask):
        pred, target = _align(pred, target)
        per_example = jnp.mean((pred - target) ** 2, axis=tuple(range(1, target.ndim)))
        valid = valid_mask(mask, per_example.shape)
        return {"sum": jnp.sum(jnp.where(valid, per_example, 0.0)), "count": jnp.sum(valid)}

    return Metric("recon_error", False, stats, lambda s: ratio(s["sum"], s["count"]))
