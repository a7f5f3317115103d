"""Instance offsets (Kendall, Gal & Cipolla 2018): L1 loss and mean offset error on instance pixels.

Predictions and targets ``(B, H, W, 2)``: for every pixel of an object instance
the vector ``(dy, dx)`` from the pixel to its instance's centroid, in pixels.
A pixel counts when ``mask`` (``(B, H, W)``, the batch's ``instance_mask``; a
per-example ``(B,)`` mask is broadcast) allows it and its target is finite;
the others (stuff, void, groups without instance ids) are left out of both the
loss and the metric. A pixel's error is the L1 norm ``|dy - dy'| + |dx - dx'|``
of the difference, averaged over the counted pixels (of the batch for the loss,
of the whole split for the metric).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask


def _error(pred, target, mask):
    """Per-pixel L1 norm of ``pred - target`` ``(B, H, W)`` and the counted pixels."""
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if pred.shape != target.shape:
        raise ValueError(f"offset prediction {pred.shape} and target {target.shape} differ (both (B, H, W, 2))")
    finite = jnp.all(jnp.isfinite(target), axis=-1)
    valid = valid_mask(mask, target.shape[:-1]) & finite
    target = jnp.where(finite[..., None], target, 0.0)   # NaN targets: no NaN in the (masked) gradient
    return jnp.sum(jnp.abs(pred - target), axis=-1), valid


def l1_offset_loss(pred: jax.Array, target: jax.Array, mask=None) -> jax.Array:
    """Mean over instance pixels of the L1 offset error (0 when the batch has none)."""
    error, valid = _error(pred, target, mask)
    return masked_mean(error, valid)


def offset_error() -> Metric:
    """Mean L1 offset error in pixels over the instance pixels of the split (lower is better)."""

    def stats(pred, target, mask):
        error, valid = _error(pred, target, mask)
        return {"sum": jnp.sum(jnp.where(valid, error, 0.0)), "count": jnp.sum(valid)}

    return Metric("offset_err", False, stats, lambda s: ratio(s["sum"], s["count"]))
