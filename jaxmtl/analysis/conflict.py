"""Gradient conflict and magnitude statistics between pairs of gradients (Paper A, A3).

For two gradients ``g, g'`` of the shared parameters:

* cosine similarity ``S_cos = <g, g'> / (|g| |g'|)`` (a conflict when ``< 0``);
* magnitude similarity ``S_mag = 2 |g| |g'| / (|g|^2 + |g'|^2)`` (Yu et al. 2020;
  1 for equal norms, towards 0 as they drift apart);
* the raw dot product ``<g, g'>``;
* the fraction of coordinates with opposite signs (``g_i g'_i < 0``), a
  coordinate-wise notion of conflict (*ours*; Paper A's "fraction of
  conflicting parameters" leaves it open).

Pairs: **inter-task** (same sample, different tasks), **inter-sample** (same task,
different samples: the single-task analogue), and the **batch-averaged** variants
(each task's gradient averaged over the batch, compared across tasks; each
sample's gradient averaged over tasks, compared across samples).

A zero gradient has no direction: its cosine is 0 (neither conflicting nor
aligned) and its magnitude similarity with another zero gradient is 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

STATISTICS = ("cosine", "magnitude", "dot", "sign_conflict")
GROUPS = ("inter_task", "inter_sample", "inter_task_batch", "inter_sample_batch")


def pairwise_similarity(vectors: jax.Array) -> dict[str, jax.Array]:
    """The four statistics of every pair ``i < j`` of the rows of ``vectors`` ``(N, P)``.

    Returns a dict of arrays of length ``N (N - 1) / 2`` (pairs in row-major
    order of the upper triangle), keyed by :data:`STATISTICS`. Computed in float32
    on any input dtype; jit-compatible.
    """
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be (N, P), got shape {vectors.shape}")
    v = vectors.astype(jnp.float32)
    n = v.shape[0]
    i, j = np.triu_indices(n, k=1)
    # scale by the largest entry so that squared norms neither overflow nor underflow
    peak = jnp.max(jnp.abs(v))
    v = v / jnp.where(peak > 0, peak, 1.0)
    gram = jnp.matmul(v, v.T, precision=jax.lax.Precision.HIGHEST)
    sq = jnp.diagonal(gram)
    norms = jnp.sqrt(sq)
    denom = norms[i] * norms[j]
    cosine = jnp.where(denom > 0, gram[i, j] / jnp.where(denom > 0, denom, 1.0), 0.0)
    total = sq[i] + sq[j]
    magnitude = jnp.where(total > 0, 2 * denom / jnp.where(total > 0, total, 1.0), 1.0)
    signs = jnp.sign(v)
    opposite = jnp.mean((signs[i] * signs[j]) < 0, axis=1)
    dot = gram[i, j] * peak.astype(jnp.float32) ** 2
    return {"cosine": jnp.clip(cosine, -1.0, 1.0), "magnitude": jnp.clip(magnitude, 0.0, 1.0),
            "dot": dot, "sign_conflict": opposite}


def conflict_statistics(grads: jax.Array) -> dict[str, dict[str, jax.Array]]:
    """All four pair groups of per-sample, per-task gradients ``grads`` ``(S, T, P)``.

    ``inter_task``: ``S * T (T - 1) / 2`` pairs, ``inter_sample``: ``T * S (S - 1) / 2``,
    ``inter_task_batch``: ``T (T - 1) / 2`` pairs of batch means,
    ``inter_sample_batch``: ``S (S - 1) / 2`` pairs of task means. Each group maps
    :data:`STATISTICS` to a flat array of pair values (see :func:`pairwise_similarity`).
    """
    if grads.ndim != 3:
        raise ValueError(f"grads must be (samples, tasks, params), got shape {grads.shape}")
    flat = lambda d: {k: v.reshape(-1) for k, v in d.items()}
    return {
        "inter_task": flat(jax.vmap(pairwise_similarity)(grads)),
        "inter_sample": flat(jax.vmap(pairwise_similarity, in_axes=1)(grads)),
        "inter_task_batch": pairwise_similarity(jnp.mean(grads, axis=0)),
        "inter_sample_batch": pairwise_similarity(jnp.mean(grads, axis=1)),
    }


def spread(values) -> dict[str, float]:
    """Mean, standard deviation, 2.5 and 97.5 percentiles of ``values`` and the
    positive/negative split: the fraction of negative values and the mean of the
    positive and of the negative ones (NaN where there are none)."""
    x = np.asarray(values, np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("spread of an empty set of values")
    pos, neg = x[x > 0], x[x < 0]
    return {"mean": float(x.mean()), "std": float(x.std()), "p2.5": float(np.percentile(x, 2.5)),
            "p97.5": float(np.percentile(x, 97.5)), "neg_fraction": float(neg.size / x.size),
            "pos_mean": float(pos.mean()) if pos.size else float("nan"),
            "neg_mean": float(neg.mean()) if neg.size else float("nan"), "n": int(x.size)}
