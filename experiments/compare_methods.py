"""Main job: MTL methods x optimisers on Multi-Fashion (or any benchmark), against single-task baselines.

    python -m experiments.compare_methods --preset quick [--out results/compare_methods]
    python -m experiments.compare_methods --dataset nyuv2 --data-dir ~/data/nyuv2 [--arch segnet] [--tiny-model]

Trains, for every seed and optimiser, the single-task (STL) baseline of every
task and every MTL method (EW, mean, MGDA, PCGrad, UPGrad by default; ``--methods``
takes any name in ``experiments.runs.METHODS``, ``--optimizers`` any of adam,
sgd_momentum, signsgd_momentum, adatask, mtl_io) with the same model
(``--dataset``: any of ``experiments.datasets.DATASETS``, docs/datasets.md;
MultiLeNet on Multi-Fashion), evaluates per task after every epoch, selects each
run's epoch on validation (STL: its task's first metric, accuracy on
Multi-Fashion; MTL: validation delta-m against the STL runs) and reports that
metric on test at that epoch, delta-m over all metrics in both conventions
(``metric``: the signed relative change averaged over every metric of every task,
lower is better; ``task``: each task's mean relative change, averaged over tasks,
higher is better; :func:`jaxmtl.training.delta_m`, directions from the record)
against the best STL run per task, and the median train-step time
(ratio to EW with the same optimiser). On other data sets than Multi-Fashion and
Multi-MNIST the batch size is the data set's paper one (``--batch-size``
overrides) and the preset's ``n_train``/``n_val``/``n_test`` keep the first
examples of each split. Writes ``results.jsonl`` (one line per run; a rerun skips finished
runs), ``summary.md`` and ``summary.png`` into ``--out``.
"""
from __future__ import annotations

import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.cli import (at_least, method_names, out_dir, run_main, study_data, study_parser,  # noqa: E402
                             with_overrides)
from experiments.datasets import DATASETS  # noqa: E402
from experiments.optimizers import OPTIMIZERS  # noqa: E402
from experiments.report import (ERROR_BARS, markdown_table, mean_std, model_label, open_store, png_bytes,  # noqa: E402
                                spread, write_summary)
from experiments.runs import METHODS, RunSpec, run_grid  # noqa: E402
from experiments.selection import (directions, primary_metric, select_epoch, split_delta_m,  # noqa: E402
                                   stl_baselines, task_value)

DEFAULT_METHODS = ["ew", "mean", "mgda", "pcgrad", "upgrad"]
DEFAULT_OPTIMIZERS = ["adam", "sgd_momentum"]
PRESETS = {
    "tiny": dict(data=dict(n_train=256, n_val=128, n_test=128), epochs=1, batch_size=64, seeds=[0],
                 methods=["ew", "upgrad"], optimizers=["adam"]),
    "quick": dict(data=dict(n_train=10240, n_val=2048, n_test=2048), epochs=3, batch_size=128,
                  seeds=[0, 1, 2], methods=DEFAULT_METHODS, optimizers=DEFAULT_OPTIMIZERS),
    "paper": dict(data=dict(), epochs=30, batch_size=256, seeds=[0, 1, 2],
                  methods=DEFAULT_METHODS, optimizers=DEFAULT_OPTIMIZERS),
}
PRESET_NOTES = {
    "tiny": "smoke run: 256 canvases, 1 epoch, EW and UPGrad with Adam (4 runs); under a minute on CPU",
    "quick": "42 runs (2 STL + 5 methods, x Adam and SGD+mom., 3 seeds: one seed's delta-m moves by about "
             "a point), 10240 canvases, 3 epochs; CPU ~17 min (measured from scratch on 2 cores: 378 s + 629 s), "
             "GPU ~5 min (estimated; mostly compilation)",
    "paper": "42 runs (3 seeds), full Multi-Fashion (50k canvases), 30 epochs; CPU ~1-2 days, GPU ~1 h",
}
LEARNING_RATES = {"adam": 1e-3, "sgd_momentum": 1e-2, "signsgd_momentum": 1e-3, "adatask": 1e-3,
                  "mtl_io": 1e-3, "mtl_io_sgd_momentum": 1e-2, "mtl_io_signsgd_momentum": 1e-3}


def build_specs(cfg: dict, data_seed: int, num_tasks: int = 2, dataset: dict | None = None) -> list[RunSpec]:
    """The runs of ``cfg``: per seed and optimiser, ``num_tasks`` STL runs and the methods;
    ``dataset``: the :class:`RunSpec` fields naming the data set (default Multi-Fashion)."""
    data = dict(cfg["data"], seed=data_seed)
    specs = []
    for seed in cfg["seeds"]:
        for opt in cfg["optimizers"]:
            common = dict(optimizer=opt, lr=LEARNING_RATES[opt], seed=seed, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data, **(dataset or {}))
            specs += [RunSpec(method="stl", stl_task=t, **common) for t in range(num_tasks)]
            specs += [RunSpec(method=m, **common) for m in cfg["methods"]]
    return specs


def _shown(metric: str) -> tuple[str, float, str]:
    """Column label, scale and format of a reported metric (accuracy in %)."""
    return ("acc", 100.0, "{:.2f}") if metric == "accuracy" else (metric, 1.0, "{:.4g}")


def summarize(records: list[dict]) -> tuple[str, list[dict]]:
    """Markdown summary and one row dict per (method, optimizer) with per-seed values."""
    stl = [r for r in records if r["spec"]["stl_task"] is not None]
    mtl = [r for r in records if r["spec"]["stl_task"] is None]
    if not stl or not mtl:
        return "(no complete STL + MTL results yet)", []
    tasks = records[0]["tasks"]
    higher = directions(records[0])
    primary = [primary_metric(records[0], t) for t in tasks]
    scales = [_shown(m)[1] for m in primary]
    # validation curves: the shared primary metric (Multi-Fashion: accuracy), else the loss
    curve_metric = primary[0] if len(set(primary)) == 1 else "loss"
    base_val, base_test = stl_baselines(records)
    groups: dict[tuple, dict] = {}
    for r in records:
        if not r["epochs"]:  # diverged in its first epoch: nothing to select
            continue
        s = r["spec"]
        name = s["method"] if s["stl_task"] is None else f"stl ({tasks[s['stl_task']]})"
        g = groups.setdefault((name, s["optimizer"]), {"method": name, "optimizer": s["optimizer"],
                                                       "acc": [[] for _ in tasks], "dm_metric": [],
                                                       "dm_task": [], "step_ms": [], "curves": [],
                                                       "curve_metric": curve_metric})
        g["step_ms"].append(1000 * r["step_time_s"])
        own = range(len(tasks)) if s["stl_task"] is None else [s["stl_task"]]
        g["curves"].append([float(np.mean([_loss(e["val"], tasks, t) if curve_metric == "loss"
                                           else task_value(r, e["val"], t, curve_metric) for t in own]))
                            for e in r["epochs"]])
        if s["stl_task"] is not None:
            t = s["stl_task"]
            g["acc"][t].append(scales[t] * task_value(r, select_epoch(r, None)["test"], t))
            continue
        best = select_epoch(r, base_val[s["seed"]])
        for t in range(len(tasks)):
            g["acc"][t].append(scales[t] * task_value(r, best["test"], t))
        g["dm_metric"].append(split_delta_m(r, best["test"], base_test[s["seed"]], "metric"))
        g["dm_task"].append(split_delta_m(r, best["test"], base_test[s["seed"]], "task"))
    rows = []
    for g in groups.values():
        ew = groups.get(("ew", g["optimizer"]))
        ratio = f"{np.mean(g['step_ms']) / np.mean(ew['step_ms']):.2f}" if ew else "-"
        rows.append([g["method"], g["optimizer"], *[mean_std(a, _shown(m)[2]) for a, m in zip(g["acc"], primary)],
                     mean_std(g["dm_metric"]), mean_std(g["dm_task"]),
                     f"{np.mean(g['step_ms']):.1f}", ratio])
    columns = [f"test acc {t} (%)" if m == "accuracy" else f"test {m} {t} ({'↑' if higher[m] else '↓'})"
               for t, m in zip(tasks, primary)]
    header = ["method", "optimizer", *columns, "Δm metric (%, ↓)", "Δm task (%, ↑)", "step (ms)", "step / EW"]
    note = ("Test accuracy at the epoch chosen on validation; Δm against the best single-task "
            "run per task and seed; mean ± std over seeds where there are several.")
    if primary != ["accuracy"] * len(tasks):
        note = ("Each task's first metric on test at the epoch chosen on validation; Δm over all metrics "
                "of all tasks against the best single-task run per task and seed; mean ± std over seeds "
                "where there are several.")
    return markdown_table(header, rows) + "\n\n" + note + "\n", list(groups.values())


def _loss(split: dict, tasks: list[str], t: int) -> float:
    """Validation loss of task number ``t`` in an evaluation of either record format."""
    return split["loss"][t] if isinstance(split.get("loss"), list) else split[tasks[t]]["loss"]


def plot(groups: list[dict]) -> bytes:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    mtl = [g for g in groups if g["dm_metric"]]
    optimizers = sorted({g["optimizer"] for g in mtl})
    methods = sorted({g["method"] for g in mtl})
    width = 0.8 / max(len(optimizers), 1)
    for k, opt in enumerate(optimizers):
        dms = [next((g["dm_metric"] for g in mtl if g["method"] == m and g["optimizer"] == opt), [np.nan])
                for m in methods]
        ax1.bar(np.arange(len(methods)) + k * width, [np.mean(v) for v in dms], width,
                yerr=[spread(v) for v in dms], capsize=2, label=opt)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(np.arange(len(methods)) + width * (len(optimizers) - 1) / 2, methods)
    ax1.set_ylabel("Δm metric (%, lower is better)")
    ax1.set_title(f"Test Δm vs single-task baselines (mean over seeds)\n{ERROR_BARS}", fontsize=9)
    if optimizers:
        ax1.legend()
    else:
        ax1.text(0.5, 0.5, "no multi-task run in this store", ha="center", va="center", transform=ax1.transAxes)
    names = sorted({g["method"] for g in groups})
    colors = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(names)}
    styles = {opt: ls for opt, ls in zip(sorted({g["optimizer"] for g in groups}), ["-", "--", ":", "-."] * 3)}
    metric = groups[0]["curve_metric"] if groups else "accuracy"
    label, scale, _ = _shown(metric)
    for g in groups:
        curve = np.mean(g["curves"], axis=0)
        ax2.plot(np.arange(1, len(curve) + 1), scale * curve, marker="o", color=colors[g["method"]],
                 ls=styles[g["optimizer"]], label=f"{g['method']} / {g['optimizer']}")
    ax2.xaxis.get_major_locator().set_params(integer=True)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mean validation accuracy (%)" if metric == "accuracy" else f"mean validation {metric}")
    ax2.set_title(f"Validation {'accuracy' if metric == 'accuracy' else metric} (mean over tasks)")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "compare_methods", PRESETS, PRESET_NOTES)
    parser.add_argument("--methods", nargs="+", type=method_names(METHODS), default=None, metavar="METHOD",
                        help=f"the MTL methods (registry names, labels or LibMTL/TorchJD names): {', '.join(METHODS)}")
    parser.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS), default=None,
                        help="the base optimisers, each with its learning rate " + str(LEARNING_RATES))
    parser.add_argument("--seeds", nargs="+", type=at_least(0), default=None, help="the training seeds")
    parser.add_argument("--epochs", type=at_least(1), default=None, help="epochs per run")
    parser.add_argument("--batch-size", type=at_least(1), default=None,
                        help="default: the preset's on Multi-Fashion and Multi-MNIST, the data set's paper "
                             "batch size on the others")
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "optimizers", "seeds", "epochs", "batch_size"))
    bench = DATASETS[args.dataset]
    if args.batch_size is None and not bench.preset_batch:
        cfg["batch_size"] = bench.batch_size
    out = out_dir(args, "compare_methods")
    store = open_store(out)
    t0 = time.time()
    data, dataset = study_data(args, cfg["data"])
    num_tasks = len(bench.tasks(data, dataset.get("tasks")))
    specs = build_specs(cfg, data_seed=0, num_tasks=num_tasks, dataset=dataset)
    records = run_grid(specs, data, store, devices=args.devices)
    table, groups = summarize(records)
    setup = (f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seeds {cfg['seeds']}, learning rates "
             f"{LEARNING_RATES}, {model_label(bench, dataset['arch'], dataset['tiny'], class_name=True)}.\n\n")
    write_summary(out, f"MTL methods on {bench.title}", args.preset, setup + table,
                  plot(groups) if groups else None, t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
