"""Paper B's comparisons of trajectories at comparable training loss (pure NumPy).

Mueller, Dredze, Andrews (TMLR 2024), "Can Optimization Trajectories Explain
Multi-Task Transfer?"; the protocol is ours (``../shared/STUDIES.md``). A
*trajectory* is a dict of one run as :mod:`experiments.paper_b.trajectories` logs it:
``steps`` (ascending ints), per-task ``train_loss``, ``val_loss`` and
``val_metric`` (lists over steps of lists over tasks), the analysis
``checkpoints`` (their own ``steps`` and per-task quantities) and the per-step
``conflict``: ``update``, the cosine of each trained task's gradient with the applied
update, and ``inter``, the cosine of each pair of task gradients (``pairs``), both on
the shared parameters.

Everything compares one task of a multi-task (MTL) run with the single-task
(STL) run of the same task and seed *at a training-loss level*: each run is
read at the step where its training loss of the task first reaches the level
(:func:`first_crossing`, linear interpolation between logged steps), and the
MTL value minus the STL value is the gap.
"""
from __future__ import annotations

import numpy as np

QUANTITIES = {"sharpness": "sharpness λ_max", "fisher_trace": "Fisher trace",
              "noise_scale": "noise scale B_simple", "coherence": "coherence"}
"""The analysis quantities recorded at checkpoints, with their labels."""
CONFLICTS = {"update": "cos(g_t, update)", "inter": "cos(g_t, g_s)"}
"""The two conflict measures of an MTL step, per task: the cosine of the task's gradient with
the applied update, and the mean cosine of its gradient with the other tasks' (paper B's
conflict *between tasks*)."""
MIN_LANCZOS, LANCZOS_WINDOW, LANCZOS_RTOL = 20, 5, 1e-3
"""Convergence check of the sharpness: at least 20 steps, then the first step whose answer
moved by at most 1e-3 (relative) over the 5 steps before it."""


def first_crossing(steps, losses, level: float) -> float | None:
    """The (fractional) step at which ``losses`` first reach ``level`` or below.

    Linear interpolation between the last logged step above the level and the
    first at or below it; ``steps[0]`` when the first value is already at or
    below; ``None`` when the level is never reached.
    """
    losses = np.asarray(losses, float)
    below = np.nonzero(losses <= level)[0]
    if not len(below):
        return None
    i = int(below[0])
    if i == 0:
        return float(steps[0])
    hi, lo = losses[i - 1], losses[i]
    frac = (hi - level) / (hi - lo)
    return float(steps[i - 1] + frac * (steps[i] - steps[i - 1]))


def series(traj: dict, name: str, task: int) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a logged series (``train_loss``, ``val_loss``,
    ``val_metric``) or a checkpoint quantity (:data:`QUANTITIES`) of ``task``."""
    if name in QUANTITIES:
        ck = traj["checkpoints"]
        return np.asarray(ck["steps"], float), np.asarray(ck[name], float)[:, task]
    return np.asarray(traj["steps"], float), np.asarray(traj[name], float)[:, task]


def at_level(traj: dict, task: int, level: float, name: str) -> tuple[float, float] | None:
    """``(step, value)``: the run's series ``name`` at the step where the task's
    training loss first reaches ``level`` (interpolated in step); ``None`` when
    the run never reaches it."""
    step = first_crossing(traj["steps"], np.asarray(traj["train_loss"])[:, task], level)
    if step is None:
        return None
    xs, ys = series(traj, name, task)
    return step, float(np.interp(step, xs, ys))


def gap_at(stl: dict, mtl: dict, task: int, level: float, name: str = "val_loss") -> float | None:
    """MTL minus STL value of ``name`` at training-loss ``level``; ``None`` unless both reach it."""
    a, b = at_level(mtl, task, level, name), at_level(stl, task, level, name)
    return None if a is None or b is None else a[1] - b[1]


def shared_levels(pairs: list[tuple[dict, dict]], task: int, n: int) -> np.ndarray:
    """``n`` training-loss levels every run of ``pairs`` reaches: geometric from
    below the lowest initial loss (the initial level, where identically
    initialised runs agree, is left out) down to the highest minimum."""
    train = [np.asarray(t["train_loss"])[:, task] for pair in pairs for t in pair]
    hi, lo = min(x[0] for x in train), max(x.min() for x in train)
    if not lo < hi:
        return np.zeros(0)
    return np.geomspace(hi, lo, n + 1)[1:]


def opens_at(gaps, threshold: float) -> int | None:
    """Index of the first level (in training order) from which ``|gap| >= threshold`` at
    every later level; ``None`` when it never stays open or the threshold is NaN (one seed:
    :func:`experiments.paper_b.uncertainty.open_threshold`)."""
    if not np.isfinite(threshold):
        return None
    open_ = np.abs(np.asarray(gaps, float)) >= threshold
    for i in range(len(open_)):
        if open_[i:].all():
            return i
    return None


def correlation(x, y) -> tuple[float, float, int]:
    """Pearson r, Spearman ρ and the number of finite pairs (NaN below 3 pairs or
    without variance)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(len(x))
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), n
    rank = lambda v: np.argsort(np.argsort(v)).astype(float)
    return float(np.corrcoef(x, y)[0, 1]), float(np.corrcoef(rank(x), rank(y))[0, 1]), n


def partial_correlation(x, y, z) -> tuple[float, int]:
    """Pearson r of ``x`` and ``y`` with ``z``'s linear effect removed from both (the
    correlation of the residuals of least-squares fits on ``z``), and the number of
    finite triples; NaN below 4 triples or without residual variance."""
    x, y, z = (np.asarray(v, float) for v in (x, y, z))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[keep], y[keep], z[keep]
    n = int(len(x))
    if n < 4 or np.ptp(z) == 0:
        return float("nan"), n
    design = np.stack([np.ones(n), z], axis=1)
    residual = lambda v: v - design @ np.linalg.lstsq(design, v, rcond=None)[0]
    return correlation(residual(x), residual(y))[0], n


def explanation_points(stl: dict, mtl: dict, task: int) -> list[dict]:
    """At each analysis checkpoint of the MTL run after the first, with level the
    MTL training loss there: the validation-loss gap and each quantity's MTL-minus-STL
    difference at that level (skipped where the STL run does not reach it), and the
    checkpoint's ``progress`` (fraction of the MTL run's logged steps)."""
    ck_steps = mtl["checkpoints"]["steps"][1:]
    train_steps, train = series(mtl, "train_loss", task)
    points = []
    for step in ck_steps:
        level = float(np.interp(step, train_steps, train))
        gap = gap_at(stl, mtl, task, level)
        if gap is None:
            continue
        points.append({"level": level, "gap": gap, "progress": step / mtl["steps"][-1],
                       **{q: gap_at(stl, mtl, task, level, q) for q in QUANTITIES}})
    return points


def task_conflicts(traj: dict, task: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, update, inter)`` of an MTL run's task: per logged step, the cosine of the
    task's gradient with the applied update, and the mean cosine of its gradient with each
    other task's (over the pairs holding it)."""
    c = traj["conflict"]
    pairs = np.asarray(c["pairs"], int).reshape(-1, 2)
    mine = (pairs == task).any(axis=1)
    inter = np.asarray(c["inter"], float).reshape(len(c["steps"]), len(pairs))[:, mine].mean(axis=1)
    return np.asarray(c["steps"]), np.asarray(c["update"], float)[:, task], inter


def conflict_points(stl: dict, mtl: dict, task: int) -> list[dict]:
    """Per logged interval ``[k_i, k_i+1)`` of the MTL run: the mean over the interval's
    steps of both conflict measures (:data:`CONFLICTS`, :func:`task_conflicts`), the
    *optimization deficit* (the STL run's training-loss decrease over the same steps minus
    the MTL run's: positive when multi-task training optimises the task less) and the
    generalization gap at the MTL training loss at ``k_i+1``."""
    steps = np.asarray(mtl["steps"])
    cos_steps, update, inter = task_conflicts(mtl, task)
    stl_train = dict(zip(stl["steps"], np.asarray(stl["train_loss"])[:, task]))
    mtl_train = np.asarray(mtl["train_loss"])[:, task]
    points = []
    for i in range(len(steps) - 1):
        inside = (cos_steps >= steps[i]) & (cos_steps < steps[i + 1])
        if not inside.any() or steps[i] not in stl_train or steps[i + 1] not in stl_train:
            continue
        deficit = (stl_train[steps[i]] - stl_train[steps[i + 1]]) - (mtl_train[i] - mtl_train[i + 1])
        points.append({"step": int(steps[i + 1]), "update": float(update[inside].mean()),
                       "inter": float(inter[inside].mean()), "deficit": float(deficit),
                       "gap": gap_at(stl, mtl, task, float(mtl_train[i + 1]))})
    return points


def converged_iterations(history, *, min_iters: int = MIN_LANCZOS, window: int = LANCZOS_WINDOW,
                         rtol: float = LANCZOS_RTOL) -> int | None:
    """The Lanczos steps the sharpness needed: the first ``k >= min_iters`` whose answer
    (``history[k - 1]``, :func:`jaxmtl.analysis.hessian_top_eigenvalue`'s ``return_history``)
    is within ``rtol`` (relative) of each of the ``window`` answers before it; ``None`` when
    no step of ``history`` passes."""
    h = np.asarray(history, float)
    for k in range(max(min_iters, window + 1), len(h) + 1):
        recent = h[k - 1 - window:k - 1]
        if np.all(np.abs(recent - h[k - 1]) <= rtol * abs(h[k - 1])):
            return k
    return None
