"""Classification: softmax cross-entropy and accuracy (one multi-class label per example),
binary cross-entropy and accuracy (one binary attribute per example, CelebA).

A per-example ``mask`` (bool ``(B,)``) marks the labelled examples; the others
leave the loss and the metrics untouched.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.metrics.base import Metric, masked_mean, ratio, valid_mask


def cross_entropy(logits: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
    """Mean softmax cross-entropy of logits ``(B, C)`` and int labels ``(B,)`` over labelled examples."""
    valid = valid_mask(mask, labels.shape)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                         jnp.where(valid, labels, 0))
    return masked_mean(ce, valid)


def accuracy() -> Metric:
    """Fraction of labelled examples whose argmax is the label (higher is better)."""

    def stats(logits, labels, mask):
        valid = valid_mask(mask, labels.shape)
        return {"correct": jnp.sum((jnp.argmax(logits, -1) == labels) & valid), "count": jnp.sum(valid)}

    return Metric("accuracy", True, stats, lambda s: ratio(s["correct"], s["count"]))


def _squeeze(logits, labels):
    logits = jnp.asarray(logits, jnp.float32)
    return logits.reshape(labels.shape), jnp.asarray(labels).astype(jnp.float32)


def binary_cross_entropy(logits: jax.Array, labels: jax.Array, mask=None) -> jax.Array:
    """Mean sigmoid cross-entropy of logits ``(B,)`` (or ``(B, 1)``) and 0/1 labels ``(B,)``."""
    logits, labels = _squeeze(logits, labels)
    return masked_mean(optax.sigmoid_binary_cross_entropy(logits, labels), valid_mask(mask, labels.shape))


def binary_accuracy() -> Metric:
    """Fraction of labelled examples with ``(logit > 0) == label`` (higher is better)."""

    def stats(logits, labels, mask):
        logits, labels = _squeeze(logits, labels)
        valid = valid_mask(mask, labels.shape)
        return {"correct": jnp.sum(((logits > 0) == (labels > 0.5)) & valid), "count": jnp.sum(valid)}

    return Metric("accuracy", True, stats, lambda s: ratio(s["correct"], s["count"]))
