"""Study A1 (Paper A, Elich et al.): the optimizer matters as much as the MTL method.

    python -m experiments.optimizer_study --preset quick [--out results/optimizer_study/quick]

Methods EW, UW, RLW, PCGrad, CAGrad, IMTL-G, Aligned-MTL, each with Adam,
SGD+momentum and signSGD+momentum, plus AdaTask (per-task Adam moments, EW) and
MTL-IO (one optimizer per task on the shared parameters, EW) with each
optimizer; only the learning rate is tuned, from one grid shared by all; weight
decay fixed (1e-5, coupled L2 as in LibMTL); single-task (STL) baselines
trained on the same grid. Every run is evaluated after each epoch; its epoch
is chosen on validation delta-m (early stopping), and each method's learning
rate on the validation delta-m averaged over seeds. Reported on the test set:
delta-m (Paper A's convention, lower is better) per method and optimizer (mean
± std over seeds, with the rank among methods), how many runs are
Pareto-optimal in the space of per-task accuracies (overall and against each
other optimizer), and a plot of both.

IMTL here is IMTL-G (the gradient part of LibMTL's hybrid IMTL). MTL-IO with
SGD+momentum is EW with SGD+momentum up to rounding (momentum is linear); with
Adam it computes what AdaTask does.

Writes ``results.jsonl`` (one line per run, resumable), ``summary.md`` and
``summary.png`` into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.common import (HIGHER, RunSpec, as_metrics, markdown_table, mean_std, open_store,  # noqa: E402
                                png_bytes, run_grid, select_epoch, stl_baselines, study_parser,
                                with_overrides, write_summary)
from jaxmtl.analysis import pareto_mask  # noqa: E402
from jaxmtl.data import make_multi_fashion  # noqa: E402
from experiments.optimizers import MTL_IO  # noqa: E402
from jaxmtl.training import ResultStore, delta_m  # noqa: E402

METHOD_LABELS = {"ew": "EW", "uncertainty": "UW", "rlw": "RLW", "pcgrad": "PCGrad", "cagrad": "CAGrad",
                 "imtl_g": "IMTL-G", "aligned_mtl": "Aligned-MTL"}
PER_TASK = {"adatask": "AdaTask", "mtl_io": "MTL-IO"}
"""Optimizer-side methods (EW with per-task optimizer state)."""
OPTIMIZER_LABELS = {"adam": "Adam", "sgd_momentum": "SGD+mom.", "signsgd_momentum": "signSGD+mom."}
PAPER_LRS = [0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001, 0.00005, 0.00001]
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=1, batch_size=32, seeds=[0],
                 methods=["ew", "pcgrad"], per_task=["mtl_io"], optimizers=["adam", "signsgd_momentum"],
                 lrs=[1e-2, 1e-3]),
    "quick": dict(data=dict(n_train=4096, n_val=1024, n_test=2048), epochs=4, batch_size=64,
                  seeds=[0], methods=list(METHOD_LABELS), per_task=list(PER_TASK),
                  optimizers=list(OPTIMIZER_LABELS), lrs=[0.05, 0.005, 0.0005]),
    "paper": dict(data=dict(), epochs=30, batch_size=256, seeds=[0, 1, 2], methods=list(METHOD_LABELS),
                  per_task=list(PER_TASK), optimizers=list(OPTIMIZER_LABELS), lrs=PAPER_LRS),
}
WEIGHT_DECAY = 1e-5


def per_task_optimizer(kind: str, family: str) -> str | None:
    """The optimizer name of AdaTask / MTL-IO on top of ``family`` (None where undefined)."""
    if kind == "adatask":
        return "adatask" if family == "adam" else None
    return next(name for name, base in MTL_IO.items() if base == family)


def build_specs(cfg: dict, data_seed: int) -> list[RunSpec]:
    data = dict(cfg["data"], seed=data_seed)
    specs = []
    for seed in cfg["seeds"]:
        for family in cfg["optimizers"]:
            for lr in cfg["lrs"]:
                common = dict(lr=lr, seed=seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                              data=data, weight_decay=WEIGHT_DECAY)
                specs += [RunSpec(method="stl", stl_task=t, optimizer=family, **common) for t in (0, 1)]
                specs += [RunSpec(method=m, optimizer=family, **common) for m in cfg["methods"]]
                for kind in cfg["per_task"]:
                    name = per_task_optimizer(kind, family)
                    if name is not None:
                        specs.append(RunSpec(method="ew", optimizer=name, **common))
    return specs


def row_and_family(spec: dict) -> tuple[str, str]:
    """Table row (method label) and column (base optimizer) of a run."""
    opt = spec["optimizer"]
    if opt == "adatask":
        return PER_TASK["adatask"], "adam"
    if opt in MTL_IO:
        return PER_TASK["mtl_io"], MTL_IO[opt]
    return METHOD_LABELS.get(spec["method"], spec["method"]), opt


def select_runs(records: list[dict]) -> dict[tuple[str, str], dict]:
    """Per (row, optimizer): the learning rate with the best mean validation delta-m
    over seeds, and at it the per-seed test delta-m and accuracies."""
    base_val, base_test = stl_baselines(records)
    tasks = records[0]["tasks"]
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
                      "val_dm": delta_m(as_metrics(best["val"], tasks), base_val[s["seed"]], HIGHER),
                      "test_dm": delta_m(as_metrics(best["test"], tasks), base_test[s["seed"]], HIGHER),
                      "test_acc": [100 * a for a in best["test"]["accuracy"]], "epoch": best["epoch"],
                      "diverged": r["diverged"]})
    chosen: dict[tuple[str, str], dict] = {}
    for (row, family, lr), runs in by_lr.items():
        finite = [x for x in runs if x is not None]
        if len(finite) < len(runs) or not finite:
            continue  # a learning rate at which some seed diverged at once is not a candidate
        score = float(np.mean([x["val_dm"] for x in finite]))
        if (row, family) not in chosen or score < chosen[(row, family)]["val_dm"]:
            chosen[(row, family)] = {"lr": lr, "val_dm": score, "runs": finite}
    for (row, family), c in chosen.items():
        c["diverged_lrs"] = sum(1 for (r2, f2, _), runs in by_lr.items() if (r2, f2) == (row, family)
                                and any(x is None or x["diverged"] for x in runs))
    return chosen


def best_ew(study_dir: Path) -> tuple[str, float]:
    """Optimizer and learning rate of the best EW run of an A1 output directory: the
    lowest validation delta-m (mean over seeds) over optimizers and learning rates."""
    records = list(ResultStore(study_dir / "results.jsonl"))
    if not records:
        raise ValueError(f"no A1 results in {study_dir}")
    chosen = {k: c for k, c in select_runs(records).items() if k[0] == "EW"}
    if not chosen:
        raise ValueError(f"no finite EW run in {study_dir}")
    (_, family), c = min(chosen.items(), key=lambda kv: kv[1]["val_dm"])
    return family, c["lr"]


def best_stl(study_dir: Path, task: int) -> tuple[str, float]:
    """Optimizer and learning rate of the single-task run of ``task`` with the best
    validation accuracy in an A1 output directory."""
    runs = [r for r in ResultStore(study_dir / "results.jsonl") if r["spec"]["stl_task"] == task and r["epochs"]]
    if not runs:
        raise ValueError(f"no single-task run of task {task} in {study_dir}")
    best = max(runs, key=lambda r: select_epoch(r, None)["val"]["accuracy"][task])
    return best["spec"]["optimizer"], best["spec"]["lr"]


def pareto_tables(chosen: dict, families: list[str]) -> tuple[str, list[str]]:
    """Pareto-optimal counts over all chosen runs (one point per row, optimizer and seed)."""
    points, fams, names = [], [], []
    for (row, family), c in chosen.items():
        for x in c["runs"]:
            points.append(x["test_acc"])
            fams.append(family)
            names.append(f"{row} / {OPTIMIZER_LABELS.get(family, family)} / s{x['seed']}")
    points, fams = np.asarray(points), np.asarray(fams)
    k = points.shape[1]
    overall = pareto_mask(points, [True] * k)
    header = ["optimizer", "runs", "Pareto-optimal overall"] + [f"vs {OPTIMIZER_LABELS.get(f, f)}" for f in families]
    rows = []
    for f in families:
        mine = fams == f
        cells = [OPTIMIZER_LABELS.get(f, f), int(mine.sum()), f"{int(overall[mine].sum())}"]
        for other in families:
            if other == f:
                cells.append("-")
                continue
            pair = mine | (fams == other)
            front = pareto_mask(points[pair], [True] * k)
            cells.append(f"{int(front[fams[pair] == f].sum())} of {int(front.sum())}")
        rows.append(cells)
    return markdown_table(header, rows), [n for n, m in zip(names, overall) if m]


def summarize(records: list[dict], families: list[str]) -> tuple[str, dict]:
    stl = [r for r in records if r["spec"]["stl_task"] is not None]
    if not stl or len(stl) == len(records):
        return "(no complete STL + MTL results yet)", {}
    chosen = select_runs(records)
    if not chosen:
        return "(every multi-task run diverged)", {}
    tasks = records[0]["tasks"]
    fams = [f for f in families if any(f == fam for _, fam in chosen)]
    rows_order = [r for r in [*METHOD_LABELS.values(), *PER_TASK.values()] if any(r == row for row, _ in chosen)]
    ranks = {}
    for f in fams:
        order = sorted((np.mean([x["test_dm"] for x in c["runs"]]), row) for (row, fam), c in chosen.items() if fam == f)
        ranks.update({(row, f): i + 1 for i, (_, row) in enumerate(order)})
    header = ["method", *[f"{OPTIMIZER_LABELS.get(f, f)} Δm (%, ↓)" for f in fams],
              *[f"{OPTIMIZER_LABELS.get(f, f)} lr" for f in fams]]
    table = []
    for row in rows_order:
        cells = [row]
        for f in fams:
            c = chosen.get((row, f))
            cells.append("-" if c is None else f"{mean_std([x['test_dm'] for x in c['runs']])} (#{ranks[(row, f)]})")
        for f in fams:
            c = chosen.get((row, f))
            cells.append("-" if c is None else f"{c['lr']:g}" + (f" ({c['diverged_lrs']} div.)" if c["diverged_lrs"] else ""))
        table.append(cells)
    acc_header = ["method", "optimizer", *[f"test acc {t} (%)" for t in tasks]]
    acc_rows = [[row, OPTIMIZER_LABELS.get(f, f), *[mean_std([x["test_acc"][t] for x in c["runs"]])
                                                   for t in range(len(tasks))]]
                for row in rows_order for f in fams if (c := chosen.get((row, f)))]
    _, base_test = stl_baselines(records)
    for t, task in enumerate(tasks):
        acc_row = ["STL (best)", "any", *["-"] * len(tasks)]
        acc_row[2 + t] = mean_std([100 * b[task]["accuracy"] for b in base_test.values()])
        acc_rows.append(acc_row)
    pareto, front = pareto_tables(chosen, fams)
    text = ("## Best Δm per method and optimizer\n\n" + markdown_table(header, table) +
            "\n\nTest Δm (Paper A's convention: mean relative drop of the per-task accuracies "
            "against the best single-task run, lower is better) at the epoch and learning rate "
            "chosen on validation; mean ± std over seeds; (#k) ranks the methods within each "
            "optimizer; 'div.' counts the learning rates at which a run diverged.\n\n"
            "## Test accuracies\n\n" + markdown_table(acc_header, acc_rows) +
            "\n\n## Pareto-optimal runs (per-task test accuracies)\n\n" + pareto +
            "\n\n'vs X': on the front of this optimizer's and X's runs together, this optimizer's "
            "count of the front's size.\n\nOn the overall front: " + ", ".join(front) + "\n")
    return text, chosen


def plot(chosen: dict, families: list[str]) -> bytes:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    fams = [f for f in families if any(f == fam for _, fam in chosen)]
    rows = [r for r in [*METHOD_LABELS.values(), *PER_TASK.values()] if any(r == row for row, _ in chosen)]
    width = 0.8 / max(len(fams), 1)
    colors = {f: plt.get_cmap("tab10")(i) for i, f in enumerate(fams)}
    for k, f in enumerate(fams):
        vals = [[x["test_dm"] for x in chosen[(r, f)]["runs"]] if (r, f) in chosen else [np.nan] for r in rows]
        ax1.bar(np.arange(len(rows)) + k * width, [np.mean(v) for v in vals], width,
                yerr=[np.std(v) for v in vals], color=colors[f], label=OPTIMIZER_LABELS.get(f, f))
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(np.arange(len(rows)) + width * (len(fams) - 1) / 2, rows, rotation=30, ha="right")
    ax1.set_ylabel("test Δm (%, lower is better)")
    ax1.set_title("Best Δm per method and optimizer")
    ax1.legend()
    pts = [(x["test_acc"], f) for (_, f), c in chosen.items() for x in c["runs"]]
    acc = np.array([p for p, _ in pts])
    front = pareto_mask(acc, [True] * acc.shape[1])
    for f in fams:
        sel = np.array([fam == f for _, fam in pts])
        ax2.scatter(acc[sel, 0], acc[sel, 1], color=colors[f], label=OPTIMIZER_LABELS.get(f, f), s=25)
    ax2.scatter(acc[front, 0], acc[front, 1], facecolors="none", edgecolors="k", s=90, label="Pareto-optimal")
    ax2.set_xlabel("test accuracy, task 0 (%)")
    ax2.set_ylabel("test accuracy, task 1 (%)")
    ax2.set_title("Runs in metric space")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "optimizer_study", PRESETS)
    parser.add_argument("--methods", nargs="+", choices=list(METHOD_LABELS), default=None)
    parser.add_argument("--per-task", nargs="*", choices=list(PER_TASK), default=None)
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZER_LABELS), default=None)
    parser.add_argument("--lrs", nargs="+", type=float, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "per_task", "optimizers", "lrs", "seeds", "epochs"))
    out = Path(args.out or f"results/optimizer_study/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data = make_multi_fashion(args.data_dir, seed=0, **cfg["data"])
    specs = build_specs(cfg, data_seed=0)
    records = run_grid(specs, data, store)
    text, chosen = summarize(records, cfg["optimizers"])
    header = (f"# Study A1: optimizers x MTL methods on Multi-Fashion (preset `{args.preset}`)\n\n"
              f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seeds {cfg['seeds']}, learning-rate "
              f"grid {cfg['lrs']}, weight decay {WEIGHT_DECAY:g}, MultiLeNet, "
              f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test canvases.\n\n")
    write_summary(out, header + text, plot(chosen, cfg["optimizers"]) if chosen else None, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
