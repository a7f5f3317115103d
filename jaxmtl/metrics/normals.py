"""Surface normals: ``1 - cos`` loss, mean and median angle, fractions within 11.25/22.5/30 deg.

Predictions and targets ``(B, H, W, 3)``; both are L2-normalised first, a pixel
is valid when its target is non-zero (the NYUv2 layout marks missing normals
with zeros) and ``mask`` allows it. The median angle comes from a histogram of
``BIN_DEG``-wide bins (the centre of the median's bin: exact to ``BIN_DEG / 2``),
so it can be summed over batches like every other statistic.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask

BIN_DEG = 0.01
THRESHOLDS = (11.25, 22.5, 30.0)


def _cos(pred, target, mask):
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    valid = valid_mask(mask, target.shape[:-1]) & jnp.any(target != 0, axis=-1)

    def unit(v):  # no sqrt at 0: a zero prediction (all-ReLU-off pixel) must not give NaN gradients
        return v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), 1e-24))

    return jnp.sum(unit(pred) * unit(target), axis=-1), valid


def normal_loss(pred: jax.Array, target: jax.Array, mask=None) -> jax.Array:
    """Mean ``1 - cos(pred, target)`` over the valid pixels (0 when there is none)."""
    cos, valid = _cos(pred, target, mask)
    return masked_mean(1.0 - cos, valid)


def _angles(pred, target, mask):
    cos, valid = _cos(pred, target, mask)
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0))), valid


def mean_angle() -> Metric:
    """Mean angular error in degrees (lower is better)."""

    def stats(pred, target, mask):
        deg, valid = _angles(pred, target, mask)
        return {"sum": jnp.sum(jnp.where(valid, deg, 0.0)), "count": jnp.sum(valid)}

    return Metric("mean_angle", False, stats, lambda s: ratio(s["sum"], s["count"]))


def _median(hist) -> float:
    hist = np.asarray(hist, np.float64)
    if hist.sum() == 0:
        return float("nan")
    k = int(np.searchsorted(np.cumsum(hist), hist.sum() / 2))
    return (k + 0.5) * BIN_DEG


def median_angle() -> Metric:
    """Median angular error in degrees (lower is better; see ``BIN_DEG``)."""
    bins = int(round(180 / BIN_DEG))

    def stats(pred, target, mask):
        deg, valid = _angles(pred, target, mask)
        index = jnp.clip((deg / BIN_DEG).astype(jnp.int32), 0, bins - 1)
        return jnp.bincount(index.reshape(-1), weights=valid.reshape(-1).astype(jnp.float32), length=bins)

    return Metric("median_angle", False, stats, _median)


def within(threshold: float) -> Metric:
    """Fraction of valid pixels with an angular error below ``threshold`` degrees (higher is better)."""

    def stats(pred, target, mask):
        deg, valid = _angles(pred, target, mask)
        return {"hit": jnp.sum(valid & (deg < threshold)), "count": jnp.sum(valid)}

    return Metric(f"within_{threshold:g}", True, stats, lambda s: ratio(s["hit"], s["count"]))
