"""Uncertainty of paper B's gaps and correlations (pure NumPy): a two-level bootstrap and the
"gap is open" threshold from the seed-to-seed spread.

Points of the study come in *groups*, one per seed (the checkpoints or logged intervals of
that seed's runs): they are not independent, so a correlation over all of them overstates
its certainty. :func:`bootstrap_ci` resamples both levels (Davison & Hinkley 1997, sec.
3.8, "two-stage" resampling): the seeds with replacement, then, inside each seed drawn, its
points with replacement; the statistic of every replicate gives a percentile interval. With
one seed only the second level varies (a lower bound on the uncertainty, said as such in the
summaries).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

N_BOOT = 1000
"""Bootstrap replicates of every interval."""
LEVEL = 0.95
"""Coverage of every interval."""


def bootstrap_ci(groups: Sequence[np.ndarray], statistic: Callable[[np.ndarray], float], *,
                 n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over two-level bootstrap replicates of ``groups``.

    ``groups``: one array per seed, its points along the first axis (a group may be
    empty); ``statistic(points)`` of the concatenated points of a replicate (NaN
    replicates are left out). Returns ``(lo, hi)``, NaN when no replicate is finite or
    there are fewer than two points (nothing to resample).
    """
    groups = [np.asarray(g, float) for g in groups]
    groups = [g for g in groups if len(g)]
    if sum(len(g) for g in groups) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        sample = np.concatenate([groups[i][rng.integers(0, len(groups[i]), len(groups[i]))] for i in picked])
        values.append(statistic(sample))
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def open_threshold(stl_values: np.ndarray) -> float:
    """The magnitude from which a mean-over-seeds gap counts as open.

    ``stl_values`` ``(seeds, levels)``: the STL runs' validation loss at the shared
    training-loss levels. With ``s`` the seed-to-seed standard deviation pooled over the
    levels (the root of the mean of the per-level sample variances) and ``n`` seeds, a gap
    (the mean over ``n`` seeds of MTL minus STL, each carrying two runs' seed noise) has a
    standard error of about ``s sqrt(2 / n)``: the threshold is twice that. NaN with fewer
    than two seeds.
    """
    x = np.asarray(stl_values, float)
    if x.ndim != 2 or x.shape[0] < 2:
        return float("nan")
    var = np.nanvar(x, axis=0, ddof=1)
    return float(2 * np.sqrt(np.nanmean(var)) * np.sqrt(2 / x.shape[0]))
