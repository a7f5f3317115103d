"""Multi-task metrics: delta-m in the two conventions of the literature.

``convention="metric"`` (Maninis et al. 2019; Paper A, Elich et al.): the mean over
all ``K`` individual metrics of ``(-1)^{h_k} (M_k - B_k) / B_k * 100`` with
``h_k = 1`` when higher is better. **Lower is better**; 0 matches the baselines.

``convention="task"`` (Paper C, Gama & Grassi): the relative change is first
averaged over each task's metrics, then over tasks, with the sign flipped:
``(1/T) sum_t (1/K_t) sum_k (-1)^{l_k} (M_k - B_k) / B_k * 100``, ``l_k = 1`` when
lower is better. **Higher is better**. With one metric per task it is the
negative of the ``"metric"`` convention.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

CONVENTIONS = ("metric", "task")


def delta_m(results: Mapping[str, Mapping[str, float]], baselines: Mapping[str, Mapping[str, float]],
            higher_is_better: Mapping[str, bool], convention: str = "metric") -> float:
    """delta-m (%) of ``results[task][metric]`` against ``baselines[task][metric]``.

    ``higher_is_better[metric]`` gives each metric's direction. Raises
    ``ValueError`` for a missing task/metric, an unknown direction, a zero
    baseline or an unknown convention.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if not results:
        raise ValueError("results is empty")
    per_task = []
    for task, metrics in results.items():
        if task not in baselines:
            raise ValueError(f"no baseline for task {task!r}")
        changes = []
        for name, value in metrics.items():
            if name not in higher_is_better:
                raise ValueError(f"direction of metric {name!r} unknown: add it to higher_is_better")
            base = baselines[task].get(name)
            if base is None:
                raise ValueError(f"no baseline for metric {name!r} of task {task!r}")
            if base == 0:
                raise ValueError(f"baseline of {task!r}/{name!r} is 0: delta-m is undefined")
            sign = -1.0 if higher_is_better[name] else 1.0
            changes.append(sign * (value - base) / abs(base) * 100.0)
        per_task.append(changes)
    if convention == "metric":
        return float(np.mean([c for changes in per_task for c in changes]))
    return float(-np.mean([np.mean(changes) for changes in per_task]))
