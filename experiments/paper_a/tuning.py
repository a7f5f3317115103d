"""Tuning as paper A does: the best learning rate per method and optimiser (shared by A1, A3, A4).

Paper A (Elich et al.) tunes only the learning rate, per method and
optimiser, on one grid; every run keeps its epoch with the best validation
delta-m (early stopping), and the chosen learning rate is the one with the best
validation delta-m averaged over seeds. The study A1 (:mod:`experiments.paper_a.optimizer_study`)
applies this to its grid; A3 (:mod:`experiments.paper_a.conflicts`) trains the best EW
configuration of an A1 output directory and A4 (:mod:`experiments.paper_a.corruptions`)
the best configuration of each of its methods and of each single-task model:
they read it with :func:`best_config` and :func:`best_stl` (optimizer, learning
rate, weight decay, schedule), so no study imports another. :data:`WEIGHT_DECAY`
is the paper's weight decay, A1's and so A3's and A4's.

Runs are grouped in *rows*: a method name for the runs of a method with a
shared optimiser, ``'adatask'`` or ``'mtl_io'`` for the per-task optimisers (EW
with per-task optimiser state) and ``'stl0'``, ``'stl1'``, ... for the
single-task runs; each row is tuned per *family*, the base optimiser
(``adam``, ``sgd_momentum``, ``signsgd_momentum``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from experiments.selection import (as_metrics, directions, epoch_score, primary_metric, select_epoch,
                                   split_delta_m, stl_baselines, task_value)
from experiments.cli import UsageError, at_least
from experiments.optimizers import MTL_IO, OPTIMIZERS
from jaxmtl.training import ResultStore

WEIGHT_DECAY = 1e-5
"""Paper A's fixed weight decay (coupled L2, LibMTL's), of every run the studies train."""
MANUAL = {"optimizer": "adam", "lr": 1e-3, "weight_decay": WEIGHT_DECAY}
"""A3's and A4's configuration without ``--from-study``, where ``--optimizer``, ``--lr``,
``--weight-decay`` are left out."""


def row_and_family(spec: dict) -> tuple[str, str]:
    """The row (see the module docstring) and base optimiser of a run's spec."""
    opt = spec["optimizer"]
    if spec["stl_task"] is not None:
        return f"stl{spec['stl_task']}", opt
    if opt == "adatask":
        return "adatask", "adam"
    if opt in MTL_IO:
        return "mtl_io", MTL_IO[opt]
    return spec["method"], opt


def select_runs(records: list[dict]) -> dict[tuple[str, str], dict]:
    """Per multi-task (row, family): the learning rate with the best mean validation
    delta-m over seeds, and at it the per-seed test delta-m and accuracies.

    Each value has ``lr``, ``val_dm`` (mean over seeds), ``runs`` (per seed: ``seed``,
    ``label``, ``val_dm``, ``test_dm``, ``test_acc``: each task's primary test metric,
    accuracies in % (:func:`primary_values`), ``test_metrics``: every test metric,
    ``{task: {metric: value}}``, ``epoch``, ``diverged``),
    ``lrs`` (every learning rate tried, sorted) and ``diverged_lrs`` (how many of
    them had a diverging run). A learning rate at which some seed diverged before
    its first evaluation is not a candidate. Raises ``ValueError`` without
    single-task runs (the delta-m reference).
    """
    if not records:
        raise ValueError("no runs to select from")
    base_val, base_test = stl_baselines(records)
    by_lr: dict[tuple, list] = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is not None:
            continue
        row, family = row_and_family(s)
        entry = by_lr.setdefault((row, family, s["lr"]), [])
        best = select_epoch(r, base_val[s["seed"]])
        if best is None:  # diverged before its first evaluation
            entry.append(None)
            continue
        entry.append({"seed": s["seed"], "label": r["label"],
                      "val_dm": split_delta_m(r, best["val"], base_val[s["seed"]]),
                      "test_dm": split_delta_m(r, best["test"], base_test[s["seed"]]),
                      "test_acc": primary_values(r, best["test"]),
                      "test_metrics": as_metrics(best["test"], r["tasks"]), "epoch": best["epoch"],
                      "diverged": r["diverged"]})
    chosen: dict[tuple[str, str], dict] = {}
    for (row, family, lr), runs in by_lr.items():
        finite = [x for x in runs if x is not None]
        if len(finite) < len(runs) or not finite:
            continue
        score = float(np.mean([x["val_dm"] for x in finite]))
        if (row, family) not in chosen or score < chosen[(row, family)]["val_dm"]:
            chosen[(row, family)] = {"lr": lr, "val_dm": score, "runs": finite}
    for (row, family), c in chosen.items():
        tried = [(lr, runs) for (r2, f2, lr), runs in by_lr.items() if (r2, f2) == (row, family)]
        c["lrs"] = sorted(lr for lr, _ in tried)
        c["diverged_lrs"] = sum(1 for _, runs in tried if any(x is None or x["diverged"] for x in runs))
    return chosen


def primary_values(record: dict, split: dict) -> list[float]:
    """Each task's primary metric (:func:`experiments.selection.primary_metric`) in an
    evaluation, accuracies in % (Multi-Fashion: the test accuracies in %)."""
    return [(100 if primary_metric(record, name) == "accuracy" else 1) * task_value(record, split, t)
            for t, name in enumerate(record["tasks"])]


def higher_values(record: dict) -> list[bool]:
    """Whether higher is better for each task's :func:`primary_values` entry."""
    return [directions(record)[primary_metric(record, name)] for name in record["tasks"]]


def select_stl(records: list[dict]) -> dict[tuple[str, str], dict]:
    """Per single-task (row, family): the learning rate with the best validation
    score of its task (its primary metric, higher is better: Multi-Fashion's accuracy;
    mean over seeds, at each run's best epoch), as ``lr``, ``val_acc`` (that score)
    and ``lrs`` (every learning rate tried, sorted)."""
    by_lr: dict[tuple, list] = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is None:
            continue
        best = select_epoch(r, None)
        by_lr.setdefault((*row_and_family(s), s["lr"]), []).append(
            None if best is None else -epoch_score(r, best, None))
    chosen: dict[tuple[str, str], dict] = {}
    for (row, family, lr), accs in by_lr.items():
        if None in accs:
            continue
        score = float(np.mean(accs))
        if (row, family) not in chosen or score > chosen[(row, family)]["val_acc"]:
            chosen[(row, family)] = {"lr": lr, "val_acc": score}
    for (row, family), c in chosen.items():
        c["lrs"] = sorted(lr for (r2, f2, lr) in by_lr if (r2, f2) == (row, family))
    return chosen


def grid_edge(choice: dict) -> int:
    """``+1`` when ``choice['lr']`` is the largest learning rate tried, ``-1`` the
    smallest, else ``0`` (a single learning rate counts as the top edge)."""
    lrs = choice["lrs"]
    if choice["lr"] == lrs[-1]:
        return 1
    return -1 if choice["lr"] == lrs[0] else 0


def _records(study_dir: Path) -> list[dict]:
    records = list(ResultStore(Path(study_dir) / "results.jsonl"))
    if not records:
        raise UsageError(f"--from-study {study_dir}: no A1 results in {Path(study_dir) / 'results.jsonl'}")
    return records


def _config(records: list[dict], row: str, family: str, lr: float) -> dict:
    """The training settings of a chosen configuration, read from one of its runs."""
    spec = next(r["spec"] for r in records
                if row_and_family(r["spec"]) == (row, family) and r["spec"]["lr"] == lr)
    return {"optimizer": spec["optimizer"], "lr": lr, "weight_decay": spec.get("weight_decay", 0.0),
            "lr_schedule": spec.get("lr_schedule", "constant")}


def best_config(study_dir: Path, row: str) -> dict:
    """The best configuration of ``row`` (a method name of A1, or ``'adatask'``,
    ``'mtl_io'``) in an A1 output directory: over optimiser families and learning
    rates, the lowest validation delta-m (mean over seeds). Returns the settings a
    run needs: ``optimizer``, ``lr``, ``weight_decay`` and ``lr_schedule``."""
    records = _records(study_dir)
    chosen = {k: c for k, c in select_runs(records).items() if k[0] == row}
    if not chosen:
        raise UsageError(f"--from-study {study_dir}: no finite {row!r} run there")
    (_, family), c = min(chosen.items(), key=lambda kv: kv[1]["val_dm"])
    return _config(records, row, family, c["lr"])


def best_stl(study_dir: Path, task: int) -> dict:
    """The single-task configuration of ``task`` with the best validation accuracy
    (mean over seeds) in an A1 output directory, as :func:`best_config`."""
    records = _records(study_dir)
    chosen = {k: c for k, c in select_stl(records).items() if k[0] == f"stl{task}"}
    if not chosen:
        raise UsageError(f"--from-study {study_dir}: no finite single-task run of task {task} there")
    (row, family), c = max(chosen.items(), key=lambda kv: kv[1]["val_acc"])
    return _config(records, row, family, c["lr"])


def configuration_options(parser: argparse.ArgumentParser, what: str) -> None:
    """A3's and A4's training configuration: ``--from-study`` (an A1 output directory: ``what``
    it gives) or ``--optimizer``, ``--lr`` and ``--weight-decay`` (:data:`MANUAL` where left out)."""
    parser.add_argument("--from-study", default=None, help=f"an optimizer_study output directory: {what}")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help=f"the optimiser, without --from-study (default: {MANUAL['optimizer']})")
    parser.add_argument("--lr", type=at_least(0.0, float, strict=True), default=None,
                        help=f"the learning rate, without --from-study (default: {MANUAL['lr']:g})")
    parser.add_argument("--weight-decay", type=at_least(0.0, float), default=None,
                        help=f"the weight decay, without --from-study (default: A1's, {WEIGHT_DECAY:g})")


def manual_config(args: argparse.Namespace, lr_schedule: str) -> dict:
    """The configuration of :func:`configuration_options`' ``--optimizer``, ``--lr`` and
    ``--weight-decay`` (:data:`MANUAL` where left out); with ``--from-study`` they are a
    :class:`~experiments.cli.UsageError` (A1's best configuration sets them)."""
    given = {name: getattr(args, name) for name in MANUAL if getattr(args, name) is not None}
    if args.from_study and given:
        flags = "/".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags}: --from-study sets the configuration (A1's best); give one or the other")
    return {**MANUAL, **given, "lr_schedule": lr_schedule}
