"""Depth / disparity regression: L1 loss with invalid-pixel masking, absolute and relative error.

Predictions and targets ``(B, H, W)`` or ``(B, H, W, 1)``; a pixel is valid when
its target is positive (0 marks a missing depth/disparity in the NYUv2 and
Cityscapes layouts) and ``mask`` allows it. As in MTAN/LibMTL, both errors are
averaged over the valid pixels of the whole split.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask


def _valid(target, mask):
    return valid_mask(mask, target.shape) & (target > 0)


def _align(pred, target):
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if pred.shape != target.shape:
        if pred.size != target.size:
            raise ValueError(f"depth prediction {pred.shape} and target {target.shape} differ in size")
        pred = pred.reshape(target.shape)
    return pred, target


def l1_depth_loss(pred: jax.Array, target: jax.Array, mask=None) -> jax.Array:
    """Mean absolute error over the valid pixels (0 when there is none)."""
    pred, target = _align(pred, target)
    return masked_mean(jnp.abs(pred - target), _valid(target, mask))


def abs_error() -> Metric:
    """Mean absolute error over valid pixels (lower is better)."""

    def stats(pred, target, mask):
        pred, target = _align(pred, target)
        valid = _valid(target, mask)
        return {"sum": jnp.sum(jnp.where(valid, jnp.abs(pred - target), 0.0)), "count": jnp.sum(valid)}

    return Metric("abs_err", False, stats, lambda s: ratio(s["sum"], s["count"]))


def rel_error() -> Metric:
    """Mean of ``|pred - target| / target`` over valid pixels (lower is better)."""

    def stats(pred, target, mask):
        pred, target = _align(pred, target)
        valid = _valid(target, mask)
        rel = jnp.abs(pred - target) / jnp.where(valid, target, 1.0)
        return {"sum": jnp.sum(jnp.where(valid, rel, 0.0)), "count": jnp.sum(valid)}

    return Metric("rel_err", False, stats, lambda s: ratio(s["sum"], s["count"]))
