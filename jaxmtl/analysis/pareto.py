"""Pareto fronts in a space of metrics (Paper A, A1: how many runs are Pareto-optimal)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pareto_mask(points, higher_is_better: Sequence[bool]) -> np.ndarray:
    """``True`` for each row of ``points`` ``(N, K)`` that no other row dominates.

    Row ``a`` dominates ``b`` when it is at least as good on every metric and
    strictly better on one; ``higher_is_better[k]`` gives metric ``k``'s direction.
    Duplicated rows do not dominate each other (both stay on the front).
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2:
        raise ValueError(f"points must be (N, K), got shape {p.shape}")
    if len(higher_is_better) != p.shape[1]:
        raise ValueError(f"higher_is_better has {len(higher_is_better)} entries for "
                         f"{p.shape[1]} metrics")
    if np.isnan(p).any():
        raise ValueError("points contain NaN")
    signed = np.where(np.asarray(higher_is_better, bool), p, -p)  # now higher is better
    geq = np.all(signed[:, None, :] >= signed[None, :, :], axis=2)  # geq[a, b]: a >= b everywhere
    gt = np.any(signed[:, None, :] > signed[None, :, :], axis=2)
    dominated = np.any(geq & gt, axis=0)
    return ~dominated


def pareto_counts(points, labels: Sequence[str], higher_is_better: Sequence[bool]) -> dict[str, int]:
    """How many of each label's points lie on the front of all ``points``."""
    if len(labels) != len(points):
        raise ValueError(f"{len(labels)} labels for {len(points)} points")
    mask = pareto_mask(points, higher_is_better)
    return {name: int(np.sum(mask[np.asarray(labels) == name])) for name in dict.fromkeys(labels)}
