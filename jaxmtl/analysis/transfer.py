"""Robustness transfer under corruptions (Paper A, A4): the per-task ``delta_t`` score.

``delta_t = mean_{c,s} (-1)^{p_t} [M^MTL_{c,s} / M^MTL_clean - M^STL_{c,s} / M^STL_clean]``
with ``p_t = 1`` when the metric is higher-is-better, so that ``delta_t < 0``
means the multi-task model keeps a larger share of its clean performance under
corruption than the single-task model (MTL copes better).
"""
from __future__ import annotations

import numpy as np


def corruption_delta(mtl, stl, mtl_clean: float, stl_clean: float, higher_is_better: bool) -> float:
    """``delta_t`` of one task's metric: ``mtl``/``stl`` hold it for every corruption
    and severity (arrays of equal shape, e.g. ``(C, 5)``), ``*_clean`` on clean data."""
    mtl, stl = np.asarray(mtl, np.float64), np.asarray(stl, np.float64)
    if mtl.shape != stl.shape or mtl.size == 0:
        raise ValueError(f"mtl and stl need the same non-empty shape, got {mtl.shape} and {stl.shape}")
    if mtl_clean == 0 or stl_clean == 0:
        raise ValueError("a clean metric of 0 makes the relative change undefined")
    sign = -1.0 if higher_is_better else 1.0
    return float(sign * np.mean(mtl / mtl_clean - stl / stl_clean))
