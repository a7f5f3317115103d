"""Study A1 (Paper A, Elich et al.): the optimizer matters as much as the MTL method.

    python -m experiments.paper_a.optimizer_study --preset quick [--out results/optimizer_study/quick]

Methods EW, UW, RLW, PCGrad, CAGrad, IMTL-G, Aligned-MTL, each with Adam,
SGD+momentum and signSGD+momentum, plus AdaTask (per-task Adam moments, EW) and
MTL-IO (one optimizer per task on the shared parameters, EW) with each
optimizer; only the learning rate is tuned, from one grid shared by all; weight
decay fixed (1e-5, coupled L2 as in LibMTL); single-task (STL) baselines
trained on the same grid. Every run is evaluated after each epoch; its epoch
is chosen on validation delta-m (early stopping), and each method's learning
rate on the validation delta-m averaged over seeds (:mod:`experiments.paper_a.tuning`).

Methods run as in LibMTL, Paper A's code base (:data:`experiments.runs.LIBMTL_SETTINGS`):
UW's log-variances start at -0.5 and are trained by the model's own optimizer
(``uw_libmtl``), CAGrad with c = 0.5 (``cagrad_libmtl``), Aligned-MTL summing
the aligned rows (``aligned_mtl_libmtl``); ``--methods`` also takes the
library's defaults (``uncertainty``: s = 0 trained by Adam at 1e-3 whatever the
optimizer; ``cagrad``: c = 0.4; ``aligned_mtl``: rows averaged).

Grid edges: when a row's chosen learning rate (a method's, or a single-task
model's) is the largest or smallest it was tried at, the grid of that row is
extended in that direction by the grid's step, within the paper's range
[1e-5, 0.5], until no choice sits at an edge it can move past (``--no-extend``
turns this off); summary.md lists the extensions and any choice still at an edge. Learning-rate schedule
(``--lr-schedule``, :func:`experiments.optimizers.lr_factor`): ``constant`` in
``tiny`` and ``quick``, ``step`` (Paper A's halving every 100 of 300 epochs,
scaled to the preset) in ``paper``. (``tiny``, for tests, extends nothing.)

Reported on the test set: delta-m (Paper A's convention, lower is better) per
method and optimizer (mean ± std over seeds, with the rank among methods);
Pareto counts in the space of per-task accuracies: the paper's "PO w.r.t. X"
(runs of one optimizer that no run of optimizer X dominates) and the runs on
the joint front of all optimizers' runs; and a plot of both.

IMTL here is IMTL-G (the gradient part of LibMTL's hybrid IMTL). MTL-IO with
SGD+momentum is EW with SGD+momentum up to rounding (momentum is linear); with
Adam it computes what AdaTask does.

``--dataset`` (any of ``experiments.datasets.DATASETS``; ``--arch``, ``--tiny-model``,
``--batch-size``, default the data set's paper batch size off Multi-Fashion and Multi-MNIST)
runs the same grid on another benchmark: one single-task row per task, each task's
first metric in the tables and the Pareto counts (with its direction), delta-m over
all metrics (directions from the records).

Writes ``results.jsonl`` (one line per run, resumable), ``summary.md`` and
``summary.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.cli import (UsageError, at_least, method_names, out_dir, run_main, study_data,  # noqa: E402
                             study_parser, with_overrides)
from experiments.datasets import DATASETS  # noqa: E402
from experiments.optimizers import LR_SCHEDULES, MTL_IO  # noqa: E402
from experiments.paper_a.tuning import (WEIGHT_DECAY, grid_edge, higher_values, row_and_family,  # noqa: E402
                                        select_runs, select_stl)
from experiments.report import (ERROR_BARS, markdown_table, mean_std, model_label, open_store, png_bytes,  # noqa: E402
                                spread, write_summary)
from experiments.runs import LIBMTL_SETTINGS, RunSpec, run_grid  # noqa: E402
from experiments.selection import directions, primary_metric, stl_baselines  # noqa: E402
from jaxmtl.analysis import pareto_mask  # noqa: E402

METHOD_LABELS = {"ew": "EW", "uw_libmtl": "UW", "rlw": "RLW", "pcgrad": "PCGrad", "cagrad_libmtl": "CAGrad",
                 "imtl_g": "IMTL-G", "aligned_mtl_libmtl": "Aligned-MTL"}
"""The study's methods, in LibMTL's settings (Paper A's)."""
OTHER_METHODS = {"uncertainty": "UW (Adam 1e-3, s0 = 0)", "cagrad": "CAGrad (c = 0.4)",
                 "aligned_mtl": "Aligned-MTL (rows averaged)"}
"""The library's defaults of the same methods, on request (``--methods``)."""
PER_TASK = {"adatask": "AdaTask", "mtl_io": "MTL-IO"}
"""Optimizer-side methods (EW with per-task optimizer state)."""
ROW_LABELS = {**METHOD_LABELS, **OTHER_METHODS, **PER_TASK, "stl0": "STL task 0", "stl1": "STL task 1"}
OPTIMIZER_LABELS = {"adam": "Adam", "sgd_momentum": "SGD+mom.", "signsgd_momentum": "signSGD+mom."}
PAPER_LRS = [0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001]
LR_RANGE = (min(PAPER_LRS), max(PAPER_LRS))
"""The paper's range: grid extensions stay within it."""
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=1, batch_size=32, seeds=[0],
                 methods=["ew", "pcgrad"], per_task=["mtl_io"], optimizers=["adam", "signsgd_momentum"],
                 lrs=[1e-2, 1e-3], lr_schedule="constant", extend=False),
    "quick": dict(data=dict(n_train=4096, n_val=1024, n_test=2048), epochs=4, batch_size=64,
                  seeds=[0], methods=list(METHOD_LABELS), per_task=list(PER_TASK),
                  optimizers=list(OPTIMIZER_LABELS), lrs=[0.05, 0.005, 0.0005], lr_schedule="constant", extend=True),
    "paper": dict(data=dict(), epochs=30, batch_size=256, seeds=[0, 1, 2], methods=list(METHOD_LABELS),
                  per_task=list(PER_TASK), optimizers=list(OPTIMIZER_LABELS), lrs=PAPER_LRS,
                  lr_schedule="step", extend=True),
}

PRESET_NOTES = {
    "tiny": "smoke run: 128 canvases, 1 epoch, EW and PCGrad (+ MTL-IO) x Adam and signSGD+mom. x 2 learning "
            "rates; about a minute on CPU",
    "quick": "7 methods in LibMTL's settings + AdaTask and MTL-IO x 3 optimizers x 3 learning rates (+ grid "
             "extension), 4096 canvases, 4 epochs, 1 seed: 111 runs; CPU 72 min (measured), GPU ~15 min",
    "paper": "the paper's 10 learning rates, full Multi-Fashion, 30 epochs, 3 seeds (~1000 runs); CPU weeks, "
             "GPU ~1-2 days",
}


def per_task_optimizer(kind: str, family: str) -> str | None:
    """The optimizer name of AdaTask / MTL-IO on top of ``family`` (None where undefined)."""
    if kind == "adatask":
        return "adatask" if family == "adam" else None
    return next(name for name, base in MTL_IO.items() if base == family)


def row_specs(cfg: dict, row: str, family: str, lr: float, data_seed: int) -> list[RunSpec]:
    """The runs of one row (a method, ``adatask``/``mtl_io`` or ``stl<t>``) with the
    optimizer family ``family`` at ``lr``, one per seed (none where the row has no
    run on that family: AdaTask is Adam's)."""
    common = dict(lr=lr, epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=dict(cfg["data"], seed=data_seed),
                  weight_decay=WEIGHT_DECAY, lr_schedule=cfg["lr_schedule"], **cfg.get("dataset", {}))
    if row.startswith("stl"):
        return [RunSpec(method="stl", stl_task=int(row[3:]), optimizer=family, seed=s, **common) for s in cfg["seeds"]]
    if row in PER_TASK:
        name = per_task_optimizer(row, family)
        return [] if name is None else [RunSpec(method="ew", optimizer=name, seed=s, **common) for s in cfg["seeds"]]
    return [RunSpec(method=row, optimizer=family, seed=s, **common) for s in cfg["seeds"]]


def rows(cfg: dict) -> list[str]:
    """The grid's rows: one single-task row per task (``cfg['num_tasks']``, default 2), the methods."""
    return [f"stl{t}" for t in range(cfg.get("num_tasks", 2))] + list(cfg["methods"]) + list(cfg["per_task"])


def build_specs(cfg: dict, data_seed: int) -> list[RunSpec]:
    """The grid, learning rate by learning rate (an interrupted run has whole slices of it)."""
    return [spec for lr in cfg["lrs"] for family in cfg["optimizers"] for row in rows(cfg)
            for spec in row_specs(cfg, row, family, lr, data_seed)]


def step_past(lrs: list[float], direction: int) -> float | None:
    """The next learning rate past the edge of ``lrs`` in ``direction`` (+1 up, -1
    down), one grid step (the ratio of the two outermost values, 10 for a single
    value) away and clipped to :data:`LR_RANGE`; ``None`` at the range's end."""
    lrs = sorted(lrs)
    ratio = 10.0
    if len(lrs) > 1:
        ratio = lrs[-1] / lrs[-2] if direction > 0 else lrs[1] / lrs[0]
    edge = lrs[-1] if direction > 0 else lrs[0]
    nxt = min(edge * ratio, LR_RANGE[1]) if direction > 0 else max(edge / ratio, LR_RANGE[0])
    return None if np.isclose(nxt, edge) else float(nxt)


def at_edges(records: list[dict]) -> dict[tuple[str, str], tuple[float, int]]:
    """Per (row, family) whose chosen learning rate sits at an edge of its tried ones:
    ``(lr, direction)``."""
    chosen = {**select_runs(records), **select_stl(records)}
    return {k: (c["lr"], d) for k, c in chosen.items() if (d := grid_edge(c))}


def extend_grid(cfg: dict, records: list[dict], data, store, data_seed: int,
                devices: int | None = None) -> tuple[list[dict], dict]:
    """Trains the extensions of the grid past every edge choice (see the module
    docstring) until none is left that the range allows; returns all records and
    the learning rates added per (row, family)."""
    added: dict[tuple[str, str], list[float]] = {}
    while True:
        todo = []
        for (row, family), (_, direction) in at_edges(records).items():
            tried = sorted({r["spec"]["lr"] for r in records if row_and_family(r["spec"]) == (row, family)})
            nxt = step_past(tried, direction)
            if nxt is not None:
                todo += row_specs(cfg, row, family, nxt, data_seed)
                added.setdefault((row, family), []).append(nxt)
        if not todo:
            return records, added
        print(f"grid edges: extending {len(todo)} run(s)")
        records = records + run_grid(todo, data, store, devices=devices)


def pareto_tables(chosen: dict, families: list[str], up: list[bool] | None = None) -> tuple[str, list[str]]:
    """Pareto counts over the chosen runs (one point per row, optimizer and seed): the
    paper's "PO w.r.t. X" (this optimizer's runs that no run of X dominates) and the
    runs on the joint front of all optimizers' runs. ``up``: whether higher is better, per task
    (default: all, accuracies)."""
    points, fams, names = [], [], []
    for (row, family), c in chosen.items():
        for x in c["runs"]:
            points.append(x["test_acc"])
            fams.append(family)
            names.append(f"{ROW_LABELS.get(row, row)} / {OPTIMIZER_LABELS.get(family, family)} / s{x['seed']}")
    points, fams = np.asarray(points), np.asarray(fams)
    up = [True] * points.shape[1] if up is None else list(up)
    joint = pareto_mask(points, up)
    header = (["optimizer", "runs", "on the joint front (all optimizers)"] +
              [f"PO w.r.t. {OPTIMIZER_LABELS.get(f, f)} (paper's count)" for f in families])
    table = []
    for f in families:
        mine = points[fams == f]
        cells = [OPTIMIZER_LABELS.get(f, f), len(mine), int(joint[fams == f].sum())]
        for other in families:
            theirs = points[fams == other]
            cells.append("-" if other == f else
                         sum(bool(pareto_mask(np.vstack([p, theirs]), up)[0]) for p in mine))
        table.append(cells)
    return markdown_table(header, table), [n for n, m in zip(names, joint) if m]


def settings_text(methods: list[str]) -> str:
    """Which LibMTL settings (Paper A's) and which library defaults the runs use."""
    libmtl = {"uw_libmtl": "UW: log-variances start at -0.5, trained by the model's own optimizer "
                           "(its learning rate and schedule; LibMTL's weight decay on them is left out)",
              "cagrad_libmtl": "CAGrad: c = 0.5", "aligned_mtl_libmtl": "Aligned-MTL: aligned rows summed"}
    other = {"uncertainty": "UW (library default): log-variances start at 0, trained by Adam at 1e-3",
             "cagrad": "CAGrad (library default): c = 0.4",
             "aligned_mtl": "Aligned-MTL (library default): aligned rows averaged"}
    used = [libmtl[m] for m in methods if m in LIBMTL_SETTINGS] + [other[m] for m in methods if m in other]
    return "Method settings: " + ("; ".join(used) if used else "library defaults") + \
        ". IMTL is IMTL-G; RLW draws its weights from the run's seed.\n\n"


def edges_text(records: list[dict], added: dict, extend: bool) -> str:
    """Where the grid was extended and where a choice still sits at an edge."""
    label = lambda k: f"{ROW_LABELS.get(k[0], k[0])} / {OPTIMIZER_LABELS.get(k[1], k[1])}"
    ext = "; ".join(f"{label(k)}: +{', '.join(f'{lr:g}' for lr in v)}" for k, v in sorted(added.items()))
    edges = at_edges(records)
    still = "; ".join(f"{label(k)} at {lr:g} ({'top' if d > 0 else 'bottom'})" for k, (lr, d) in sorted(edges.items()))
    return ("## Learning-rate grid edges\n\n"
            f"Grid extended past an edge choice: {ext or 'none needed' if extend else 'not by this run'}.\n\n"
            f"Choices still at an edge of the learning rates tried: {still or 'none'}"
            f"{' (at the end of the paper range [1e-5, 0.5])' if still and extend else ''}.\n\n")


def metric_terms(run: dict, base: dict, higher: dict) -> dict[tuple[str, str], float]:
    """Each metric's term of Paper A's delta-m (%) of a chosen run (``test_metrics``) against
    the single-task ``base`` ``{task: {metric: value}}``: ``(-1)^h (M - B) / |B| * 100 / K``,
    K the number of metrics; the terms sum to the run's delta-m."""
    values = run["test_metrics"]
    k = sum(len(m) for m in values.values())
    return {(t, m): (-1 if higher[m] else 1) * (v - base[t][m]) / abs(base[t][m]) * 100 / k
            for t, ms in values.items() for m, v in ms.items()}


def per_metric_table(records: list[dict], chosen: dict, rows_order: list[str], fams: list[str]) -> str:
    """Paper A's Tables A4-A7: each test metric of the chosen runs, the STL baselines and
    delta-m with the metric whose term moves it most (mean over seeds)."""
    tasks, higher = records[0]["tasks"], directions(records[0])
    _, base_test = stl_baselines(records)
    cols = [(t, m) for t in tasks for m in records[0]["metrics"][t]]
    header = ["method", "optimizer", *[f"{t} {m} {'↑' if higher[m] else '↓'}" for t, m in cols], "Δm (%, ↓)",
              "largest Δm term"]
    base_row = ["STL (best)", "any", *[mean_std([b[t][m] for b in base_test.values()], "{:.4g}") for t, m in cols],
                "0", "-"]
    table = [base_row]
    for row in rows_order:
        for f in fams:
            c = chosen.get((row, f))
            if c is None:
                continue
            terms = [metric_terms(x, base_test[x["seed"]], higher) for x in c["runs"]]
            mean_terms = {k: float(np.mean([tm[k] for tm in terms])) for k in cols}
            top = max(cols, key=lambda k: abs(mean_terms[k]))
            table.append([ROW_LABELS[row], OPTIMIZER_LABELS.get(f, f),
                          *[mean_std([x["test_metrics"][t][m] for x in c["runs"]], "{:.4g}") for t, m in cols],
                          mean_std([x["test_dm"] for x in c["runs"]]),
                          f"{top[0]} {top[1]} ({mean_terms[top]:+.2f})"])
    return ("## Every test metric (Paper A's Tables A4–A7)\n\n" + markdown_table(header, table) +
            "\n\nAt the epoch and learning rate chosen on validation, mean ± std over seeds; Δm is the mean "
            "of the per-metric terms (−1)^h (M − B)/B · 100 over all the metrics above; 'largest Δm term' names "
            "the metric whose term (its share of Δm, in points) is largest in size.\n\n")


def summarize(records: list[dict], families: list[str]) -> tuple[str, dict]:
    stl = [r for r in records if r["spec"]["stl_task"] is not None]
    if not stl or len(stl) == len(records):
        return "(no complete STL + MTL results yet)", {}
    chosen = select_runs(records)
    if not chosen:
        return "(every multi-task run diverged)", {}
    tasks = records[0]["tasks"]
    fams = [f for f in families if any(f == fam for _, fam in chosen)]
    rows_order = [r for r in ROW_LABELS if any(r == row for row, _ in chosen)]
    ranks = {}
    for f in fams:
        order = sorted((np.mean([x["test_dm"] for x in c["runs"]]), row) for (row, fam), c in chosen.items() if fam == f)
        ranks.update({(row, f): i + 1 for i, (_, row) in enumerate(order)})
    header = ["method", *[f"{OPTIMIZER_LABELS.get(f, f)} Δm (%, ↓)" for f in fams],
              *[f"{OPTIMIZER_LABELS.get(f, f)} lr" for f in fams]]
    table = []
    for row in rows_order:
        cells = [ROW_LABELS[row]]
        for f in fams:
            c = chosen.get((row, f))
            cells.append("-" if c is None else f"{mean_std([x['test_dm'] for x in c['runs']])} (#{ranks[(row, f)]})")
        for f in fams:
            c = chosen.get((row, f))
            cells.append("-" if c is None else f"{c['lr']:g}" + (f" ({c['diverged_lrs']} div.)" if c["diverged_lrs"] else ""))
        table.append(cells)
    metrics = [primary_metric(records[0], t) for t in tasks]
    up = higher_values(records[0])
    acc_header = ["method", "optimizer", *[f"test acc {t} (%)" if m == "accuracy" else f"test {m} {t}"
                                           for t, m in zip(tasks, metrics)]]
    acc_rows = [[ROW_LABELS[row], OPTIMIZER_LABELS.get(f, f),
                 *[mean_std([x["test_acc"][t] for x in c["runs"]]) for t in range(len(tasks))]]
                for row in rows_order for f in fams if (c := chosen.get((row, f)))]
    _, base_test = stl_baselines(records)
    for t, task in enumerate(tasks):
        acc_row = ["STL (best)", "any", *["-"] * len(tasks)]
        scale = 100 if metrics[t] == "accuracy" else 1
        acc_row[2 + t] = mean_std([scale * b[task][metrics[t]] for b in base_test.values()])
        acc_rows.append(acc_row)
    pareto, front = pareto_tables(chosen, fams, up)
    text = ("## Best Δm per method and optimizer\n\n" + markdown_table(header, table) +
            "\n\nTest Δm (Paper A's convention: mean relative drop over every metric of every task "
            "(the accuracies on Multi-Fashion), each in its direction, "
            "against the best single-task run, lower is better) at the epoch and learning rate "
            "chosen on validation; mean ± std over seeds; (#k) ranks the methods within each "
            "optimizer; 'div.' counts the learning rates at which a run diverged.\n\n" +
            ("## Test accuracies" if set(metrics) == {"accuracy"} else "## Each task's primary test metric") +
            "\n\n" + markdown_table(acc_header, acc_rows) + "\n\n" +
            (per_metric_table(records, chosen, rows_order, fams) if "metrics" in records[0] else "") +
            "## Pareto-optimal runs (per-task test accuracies)\n\n" + pareto +
            "\n\n'PO w.r.t. X' (Paper A's count): this optimizer's runs that no run of X dominates "
            "(a run dominated only by runs of its own optimizer still counts). 'On the joint front': "
            "runs that no run of any optimizer dominates.\n\nOn the joint front: " + ", ".join(front) + "\n")
    return text, chosen


def plot(chosen: dict, families: list[str], up: list[bool] | None = None,
         labels: tuple[str, str] = ("test accuracy, task 0 (%)", "test accuracy, task 1 (%)")) -> bytes:
    """Δm per method and optimizer, and the runs in the space of the first two tasks'
    metrics (``up``: higher is better per task; ``labels`` of the two axes)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    fams = [f for f in families if any(f == fam for _, fam in chosen)]
    rows_order = [r for r in ROW_LABELS if any(r == row for row, _ in chosen)]
    width = 0.8 / max(len(fams), 1)
    colors = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(fams)}
    for k, f in enumerate(fams):
        vals = [[x["test_dm"] for x in chosen[(r, f)]["runs"]] if (r, f) in chosen else [np.nan] for r in rows_order]
        ax1.bar(np.arange(len(rows_order)) + k * width, [np.mean(v) for v in vals], width,
                yerr=[spread(v) for v in vals], capsize=2, color=colors[f], label=OPTIMIZER_LABELS.get(f, f))
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(np.arange(len(rows_order)) + width * (len(fams) - 1) / 2, [ROW_LABELS[r] for r in rows_order],
                   rotation=30, ha="right")
    ax1.set_ylabel("test Δm (%, lower is better)")
    ax1.set_title(f"Best Δm per method and optimizer (mean over seeds)\n{ERROR_BARS}", fontsize=9)
    ax1.legend()
    pts = [(x["test_acc"], f) for (_, f), c in chosen.items() for x in c["runs"]]
    acc = np.array([p for p, _ in pts])
    front = pareto_mask(acc, [True] * acc.shape[1] if up is None else list(up))
    for f in fams:
        sel = np.array([fam == f for _, fam in pts])
        ax2.scatter(acc[sel, 0], acc[sel, 1], color=colors[f], label=OPTIMIZER_LABELS.get(f, f), s=25)
    ax2.scatter(acc[front, 0], acc[front, 1], facecolors="none", edgecolors="k", s=90, label="joint front")
    ax2.set_xlabel(labels[0])
    ax2.set_ylabel(labels[1])
    ax2.set_title("Runs in metric space")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "optimizer_study", PRESETS, PRESET_NOTES,
                          pairs="the Pareto fronts and the plot are of two tasks")
    parser.add_argument("--methods", nargs="+", type=method_names([*METHOD_LABELS, *OTHER_METHODS]), default=None,
                        metavar="METHOD",
                        help="Paper A's methods in LibMTL's settings (" + ", ".join(METHOD_LABELS) + ") or the "
                             "library's defaults (" + ", ".join(OTHER_METHODS) + "); registry labels and "
                             "LibMTL/TorchJD names give the library's (UW: uncertainty)")
    parser.add_argument("--per-task", nargs="*", choices=list(PER_TASK), default=None,
                        help="EW with per-task optimiser state: "
                             + ", ".join(f"{k} ({v})" for k, v in PER_TASK.items()))
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZER_LABELS), default=None,
                        help="the base optimisers")
    parser.add_argument("--lrs", nargs="+", type=float, default=None,
                        help="the learning-rate grid shared by every method and optimiser")
    parser.add_argument("--seeds", nargs="+", type=at_least(0), default=None, help="the training seeds")
    parser.add_argument("--epochs", type=at_least(1), default=None, help="epochs per run")
    parser.add_argument("--batch-size", type=at_least(1), default=None,
                        help="default: the preset's on Multi-Fashion and Multi-MNIST, the data set's paper "
                             "batch size on the others")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                        help="constant, or step: halve after 1/3 and 2/3 of the epochs (Paper A's 100 of 300); "
                             "default: the preset's (quick: constant, paper: step)")
    parser.add_argument("--extend", action=argparse.BooleanOptionalAction, default=None,
                        help="extend the grid past edge choices (default: the preset's; tiny: no)")
    parser.add_argument("--summary-only", action="store_true",
                        help="summarise the runs already in --out, training nothing (e.g. after merging the "
                             "results.jsonl of workers, which must not share one --out: each rewrites the file)")
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args,
                         ("methods", "per_task", "optimizers", "lrs", "seeds", "epochs", "lr_schedule", "extend",
                          "batch_size"))
    bench = DATASETS[args.dataset]
    if args.batch_size is None and not bench.preset_batch:
        cfg["batch_size"] = bench.batch_size
    if len(set(cfg["lrs"])) < len(cfg["lrs"]) or min(cfg["lrs"]) <= 0:
        raise UsageError(f"--lrs {' '.join(map(str, cfg['lrs']))}: learning rates must be positive and distinct")
    out = out_dir(args, "optimizer_study")
    store = open_store(out)
    if args.summary_only and not len(store):
        raise UsageError(f"--summary-only: no runs in {store.path}")
    t0 = time.time()
    data, dataset = study_data(args, cfg["data"])
    cfg.update(dataset=dataset, num_tasks=len(bench.tasks(data, dataset.get("tasks"))))
    if args.summary_only:
        records, added = list(store), {}
        cfg.update(lrs=sorted({r["spec"]["lr"] for r in records}, reverse=True), extend=False)
    else:
        records = run_grid(build_specs(cfg, data_seed=0), data, store, devices=args.devices)
        records, added = (extend_grid(cfg, records, data, store, data_seed=0, devices=args.devices)
                          if cfg["extend"] else (records, {}))
    text, chosen = summarize(records, cfg["optimizers"])
    setup = (f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seeds {cfg['seeds']}, learning-rate "
             f"grid {cfg['lrs']}{' (extended at its edges, below)' if cfg['extend'] else ''}, "
             f"{cfg['lr_schedule']} learning rate, weight decay {WEIGHT_DECAY:g}, "
             f"{model_label(bench, dataset['arch'], dataset['tiny'], class_name=True)}, "
             f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test {bench.unit}.\n\n"
             + settings_text(cfg["methods"]) + edges_text(records, added, cfg["extend"]))
    png = None
    if chosen:
        tasks, shown = records[0]["tasks"], [primary_metric(records[0], t) for t in records[0]["tasks"]]
        labels = tuple(f"test accuracy, task {t} (%)" if shown[t] == "accuracy" else f"test {shown[t]}, {tasks[t]}"
                       for t in (0, 1))
        png = plot(chosen, cfg["optimizers"], higher_values(records[0]), labels)
    write_summary(out, f"Study A1: optimizers x MTL methods on {bench.title}", args.preset, setup + text, png, t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
