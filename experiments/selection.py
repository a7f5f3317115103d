"""Choosing from a study's runs: the best epoch on validation, the single-task baselines, delta-m.

One rule for every study. Each run keeps its epoch with the best validation score
(early stopping): a single-task run its task's primary metric (the first of the task's
metrics in the record; accuracy on Multi-Fashion), a multi-task run its validation
delta-m against the single-task baselines, in either convention of
:func:`jaxmtl.training.delta_m` (``convention='metric'``: paper A's, the mean over
every metric of the signed relative drop, lower is better; ``'task'``: paper C's, each
task's mean relative change averaged over tasks, higher is better). The baseline of a
task comes from its single-task runs by one of :data:`RULES` (:func:`stl_baselines`):
the best run per seed (paper A), the best run over all seeds, or the mean over the
runs of the configuration that is best on average (paper C).
"""
from __future__ import annotations

import json

import numpy as np

from jaxmtl.training import delta_m

CONVENTIONS = ("metric", "task")
HIGHER = {"accuracy": True}
"""Direction of the Multi-Fashion metric (records without ``directions``)."""


def directions(record: dict) -> dict[str, bool]:
    """``{metric: higher is better}`` of a record's metrics."""
    return record.get("directions", HIGHER)


def primary_metric(record: dict, task: str) -> str:
    """The metric that ranks single-task runs of ``task``: its first (accuracy on Multi-Fashion)."""
    return record["metrics"][task][0] if "metrics" in record else "accuracy"


def as_metrics(split: dict, tasks: list[str]) -> dict:
    """The metrics of an evaluation (a record's ``val``/``test``) as ``{task: {metric: value}}``,
    losses left out: Multi-Fashion's ``{"accuracy": [...]}`` or the ``{task: {...}}`` of the
    other data sets."""
    if "accuracy" in split and isinstance(split["accuracy"], list):
        return {t: {"accuracy": a} for t, a in zip(tasks, split["accuracy"])}
    return {t: {k: v for k, v in split[t].items() if k != "loss"} for t in tasks}


def task_value(record: dict, split: dict, task: int, metric: str | None = None) -> float:
    """Metric ``metric`` (default: the task's primary one) of task number ``task`` in an evaluation."""
    name = record["tasks"][task]
    return as_metrics(split, record["tasks"])[name][metric or primary_metric(record, name)]


def split_delta_m(record: dict, split: dict, baselines: dict, convention: str = "metric") -> float:
    """delta-m (%) of an evaluation of ``record`` against ``baselines`` (``{task: {metric: value}}``),
    in ``convention`` (its natural sign: ``'metric'`` lower is better, ``'task'`` higher)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown delta-m convention {convention!r}; use one of {CONVENTIONS}")
    return delta_m(as_metrics(split, record["tasks"]), baselines, directions(record), convention=convention)


def epoch_score(record: dict, epoch: dict, baselines_val: dict | None, convention: str = "metric") -> float:
    """Validation score of one evaluation, lower is better: a single-task run's primary
    validation metric of its task (negated when higher is better), a multi-task run's
    validation delta-m against ``baselines_val`` (negated in the ``'task'`` convention)."""
    stl_task = record["spec"]["stl_task"]
    if stl_task is not None:
        metric = primary_metric(record, record["tasks"][stl_task])
        value = task_value(record, epoch["val"], stl_task, metric)
        return -value if directions(record)[metric] else value
    dm = split_delta_m(record, epoch["val"], baselines_val, convention)
    return dm if convention == "metric" else -dm


def select_epoch(record: dict, baselines_val: dict | None, convention: str = "metric") -> dict | None:
    """The epoch chosen on validation (:func:`epoch_score`); ``None`` when the run has no finite epoch."""
    if not record["epochs"]:
        return None
    return min(record["epochs"], key=lambda e: epoch_score(record, e, baselines_val, convention))


def _best_stl(runs: list[dict], task: str) -> dict:
    best_run, best = min(((r, select_epoch(r, None)) for r in runs), key=lambda re: epoch_score(re[0], re[1], None))
    return {"val": as_metrics(best["val"], best_run["tasks"])[task],
            "test": as_metrics(best["test"], best_run["tasks"])[task]}


def _config(spec: dict) -> str:
    """A run's configuration: its spec without the seed."""
    return json.dumps({k: v for k, v in spec.items() if k != "seed"}, sort_keys=True)


def best_configuration(runs: list[dict], score, choose_seeds=None) -> list[dict]:
    """The runs of the configuration (a spec without its seed) with the lowest mean ``score(run)``
    over its runs on ``choose_seeds`` (``None``: all); paper C's rule for every choice."""
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(_config(r["spec"]), []).append(r)

    def mean_score(group):
        chosen = [score(r) for r in group if choose_seeds is None or r["spec"]["seed"] in choose_seeds]
        return float(np.mean(chosen)) if chosen else np.inf

    return min(groups.values(), key=mean_score)


def _stl_score(record: dict) -> float:
    best = select_epoch(record, None)
    return np.inf if best is None else epoch_score(record, best, None)


def _mean_of_best_config(runs: list[dict], task: str, choose_seeds) -> dict:
    """Paper C's single-task reference of ``task``: the configuration whose runs on
    ``choose_seeds`` have the best mean validation score (:func:`best_configuration`), then
    every metric averaged over all of its runs (validation at each run's selected epoch,
    test at the same epoch)."""
    group = [(r, select_epoch(r, None)) for r in best_configuration(runs, _stl_score, choose_seeds)]
    return {split: {m: float(np.mean([as_metrics(e[split], r["tasks"])[task][m] for r, e in group]))
                    for m in as_metrics(group[0][1][split], group[0][0]["tasks"])[task]}
            for split in ("val", "test")}


def stl_configurations(records: list[dict], choose_seeds=None) -> dict[str, list[dict]]:
    """Per task, the runs of its best single-task configuration (the ``'config_mean'`` rule)."""
    stl = [r for r in records if r["spec"]["stl_task"] is not None and r["epochs"]]
    tasks = dict.fromkeys(r["tasks"][r["spec"]["stl_task"]] for r in stl)
    return {t: best_configuration([r for r in stl if r["tasks"][r["spec"]["stl_task"]] == t], _stl_score,
                                  choose_seeds) for t in tasks}


RULES = ("per_seed", "best_run", "config_mean")


def stl_baselines(records: list[dict], rule: str = "per_seed", choose_seeds=None) -> tuple[dict, dict]:
    """Single-task references ``(val, test)``. ``rule``:

    * ``'per_seed'`` (paper A) -- ``{seed: {task: {metric: value}}}``: per seed, the best
      single-task run of the task (a seed without its own uses the best over all seeds);
    * ``'best_run'`` -- ``{task: {metric: value}}``: the best single-task run over all seeds;
    * ``'config_mean'`` (paper C's official evaluation) -- ``{task: {metric: value}}``: the
      configuration with the best mean validation score over its runs on ``choose_seeds``
      (``None``: all), its metrics averaged over all its runs.

    Tasks are every task of ``records``, by name (runs of different task sets share a
    task's baseline). Raises ``ValueError`` when a task has no finite single-task run."""
    if rule not in RULES:
        raise ValueError(f"unknown baseline rule {rule!r}; use one of {RULES}")
    stl = [r for r in records if r["spec"]["stl_task"] is not None and r["epochs"]]
    tasks = list(dict.fromkeys(t for r in records for t in r["tasks"]))

    def runs_of(task, seed=None):
        own = [r for r in stl if r["tasks"][r["spec"]["stl_task"]] == task]
        mine = [r for r in own if r["spec"]["seed"] == seed]
        if not (mine or own):
            raise ValueError(f"no finite single-task run for task {task!r}")
        return mine or own

    if rule != "per_seed":
        best = {task: (_best_stl(runs_of(task), task) if rule == "best_run"
                       else _mean_of_best_config(runs_of(task), task, choose_seeds)) for task in tasks}
        return {t: b["val"] for t, b in best.items()}, {t: b["test"] for t, b in best.items()}
    base_val, base_test = {}, {}
    for seed in sorted({r["spec"]["seed"] for r in records}):
        best = {task: _best_stl(runs_of(task, seed), task) for task in tasks}
        base_val[seed] = {t: b["val"] for t, b in best.items()}
        base_test[seed] = {t: b["test"] for t, b in best.items()}
    return base_val, base_test
