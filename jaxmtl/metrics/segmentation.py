"""Semantic segmentation: pixel cross-entropy with an ignore index, mIoU, pixel accuracy.

Logits ``(B, H, W, C)``, labels ``(B, H, W)`` int with ``ignore_index`` (default
-1, the MTAN/LibMTL preprocessed layout) for unlabelled pixels. mIoU is the mean
over the classes that occur in the targets or predictions (union > 0) of
``TP / (TP + FP + FN)``, from a confusion matrix summed over the whole split.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask

IGNORE_INDEX = -1


def _valid(logits, labels, mask, ignore_index):
    return valid_mask(mask, labels.shape) & (labels != ignore_index) & (labels >= 0) & (
        labels < logits.shape[-1])


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array, mask=None, *,
                        ignore_index: int = IGNORE_INDEX) -> jax.Array:
    """Mean cross-entropy over the labelled pixels (0 when there is none)."""
    valid = _valid(logits, labels, mask, ignore_index)
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), jnp.where(valid, labels, 0))
    return masked_mean(ce, valid)


def confusion_matrix(logits: jax.Array, labels: jax.Array, mask=None, *,
                     ignore_index: int = IGNORE_INDEX) -> jax.Array:
    """``(C, C)`` counts, row = true class, column = predicted class, labelled pixels only."""
    c = logits.shape[-1]
    valid = _valid(logits, labels, mask, ignore_index)
    index = jnp.where(valid, labels, 0) * c + jnp.argmax(logits, axis=-1)
    counts = jnp.bincount(index.reshape(-1), weights=valid.reshape(-1).astype(jnp.float32), length=c * c)
    return counts.reshape(c, c)


def _miou(confusion) -> float:
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present])) if present.any() else float("nan")


def mean_iou(ignore_index: int = IGNORE_INDEX) -> Metric:
    """mIoU (higher is better)."""
    return Metric("miou", True, lambda p, t, m: confusion_matrix(p, t, m, ignore_index=ignore_index), _miou)


def pixel_accuracy(ignore_index: int = IGNORE_INDEX) -> Metric:
    """Fraction of labelled pixels classified correctly (higher is better)."""

    def stats(logits, labels, mask):
        valid = _valid(logits, labels, mask, ignore_index)
        correct = (jnp.argmax(logits, axis=-1) == labels) & valid
        return {"correct": jnp.sum(correct), "count": jnp.sum(valid)}

    return Metric("pixel_accuracy", True, stats, lambda s: ratio(s["correct"], s["count"]))
