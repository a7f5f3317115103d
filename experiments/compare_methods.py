"""Main job: MTL methods x optimisers on Multi-Fashion, against single-task baselines.

    python -m experiments.compare_methods --preset quick [--out results/compare_methods]

Trains, for every seed and optimiser, the two single-task (STL) baselines and
every MTL method (EW, mean, MGDA, PCGrad, UPGrad by default; ``--methods`` takes any
name in ``experiments.common.METHODS``, ``--optimizers`` any of adam, sgd_momentum,
signsgd_momentum, adatask, mtl_io) with the same
MultiLeNet, evaluates per task after every epoch, selects each run's epoch on
validation (STL: its task's accuracy; MTL: validation delta-m against the STL
runs) and reports test accuracy at that epoch, delta-m in both conventions
(``metric``, lower is better; ``task``, higher is better) against the best STL
run per task, and the median train-step time (ratio to EW with the same
optimiser). Writes ``results.jsonl`` (one line per run; a rerun skips finished
runs), ``summary.md`` and ``summary.png`` into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.common import (HIGHER, METHODS, RunSpec, as_metrics, markdown_table,  # noqa: E402
                                mean_std, open_store, png_bytes, run_grid, select_epoch, stl_baselines,
                                study_parser, with_overrides, write_summary)
from experiments.optimizers import OPTIMIZERS  # noqa: E402
from jaxmtl.data import make_multi_fashion  # noqa: E402
from jaxmtl.training import delta_m  # noqa: E402

DEFAULT_METHODS = ["ew", "mean", "mgda", "pcgrad", "upgrad"]
DEFAULT_OPTIMIZERS = ["adam", "sgd_momentum"]
PRESETS = {
    "tiny": dict(data=dict(n_train=256, n_val=128, n_test=128), epochs=1, batch_size=64, seeds=[0],
                 methods=["ew", "upgrad"], optimizers=["adam"]),
    "quick": dict(data=dict(n_train=10240, n_val=2048, n_test=2048), epochs=3, batch_size=128,
                  seeds=[0], methods=DEFAULT_METHODS, optimizers=DEFAULT_OPTIMIZERS),
    "paper": dict(data=dict(), epochs=30, batch_size=256, seeds=[0, 1, 2],
                  methods=DEFAULT_METHODS, optimizers=DEFAULT_OPTIMIZERS),
}
LEARNING_RATES = {"adam": 1e-3, "sgd_momentum": 1e-2, "signsgd_momentum": 1e-3, "adatask": 1e-3,
                  "mtl_io": 1e-3, "mtl_io_sgd_momentum": 1e-2, "mtl_io_signsgd_momentum": 1e-3}


def build_specs(cfg: dict, data_seed: int) -> list[RunSpec]:
    data = dict(cfg["data"], seed=data_seed)
    specs = []
    for seed in cfg["seeds"]:
        for opt in cfg["optimizers"]:
            common = dict(optimizer=opt, lr=LEARNING_RATES[opt], seed=seed, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], data=data)
            specs += [RunSpec(method="stl", stl_task=t, **common) for t in (0, 1)]
            specs += [RunSpec(method=m, **common) for m in cfg["methods"]]
    return specs


def summarize(records: list[dict]) -> tuple[str, list[dict]]:
    """Markdown summary and one row dict per (method, optimizer) with per-seed values."""
    stl = [r for r in records if r["spec"]["stl_task"] is not None]
    mtl = [r for r in records if r["spec"]["stl_task"] is None]
    if not stl or not mtl:
        return "(no complete STL + MTL results yet)", []
    tasks = records[0]["tasks"]
    base_val, base_test = stl_baselines(records)
    groups: dict[tuple, dict] = {}
    for r in records:
        if not r["epochs"]:  # diverged in its first epoch: nothing to select
            continue
        s = r["spec"]
        name = s["method"] if s["stl_task"] is None else f"stl ({tasks[s['stl_task']]})"
        g = groups.setdefault((name, s["optimizer"]), {"method": name, "optimizer": s["optimizer"],
                                                       "acc": [[] for _ in tasks], "dm_metric": [],
                                                       "dm_task": [], "step_ms": [], "curves": []})
        g["step_ms"].append(1000 * r["step_time_s"])
        own = slice(None) if s["stl_task"] is None else slice(s["stl_task"], s["stl_task"] + 1)
        g["curves"].append([float(np.mean(e["val"]["accuracy"][own])) for e in r["epochs"]])
        if s["stl_task"] is not None:
            g["acc"][s["stl_task"]].append(100 * select_epoch(r, None)["test"]["accuracy"][s["stl_task"]])
            continue
        best = select_epoch(r, base_val[s["seed"]])
        for t in range(len(tasks)):
            g["acc"][t].append(100 * best["test"]["accuracy"][t])
        test = as_metrics(best["test"], tasks)
        g["dm_metric"].append(delta_m(test, base_test[s["seed"]], HIGHER, "metric"))
        g["dm_task"].append(delta_m(test, base_test[s["seed"]], HIGHER, "task"))
    rows = []
    for g in groups.values():
        ew = groups.get(("ew", g["optimizer"]))
        ratio = f"{np.mean(g['step_ms']) / np.mean(ew['step_ms']):.2f}" if ew else "-"
        rows.append([g["method"], g["optimizer"], *[mean_std(a) for a in g["acc"]],
                     mean_std(g["dm_metric"]), mean_std(g["dm_task"]),
                     f"{np.mean(g['step_ms']):.1f}", ratio])
    header = ["method", "optimizer", *[f"test acc {t} (%)" for t in tasks],
              "Δm metric (%, ↓)", "Δm task (%, ↑)", "step (ms)", "step / EW"]
    note = ("Test accuracy at the epoch chosen on validation; Δm against the best single-task "
            "run per task and seed; mean ± std over seeds where there are several.")
    return markdown_table(header, rows) + "\n\n" + note + "\n", list(groups.values())


def plot(groups: list[dict]) -> bytes:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    mtl = [g for g in groups if g["dm_metric"]]
    optimizers = sorted({g["optimizer"] for g in mtl})
    methods = sorted({g["method"] for g in mtl})
    width = 0.8 / max(len(optimizers), 1)
    for k, opt in enumerate(optimizers):
        vals = [next((np.mean(g["dm_metric"]) for g in mtl if g["method"] == m and g["optimizer"] == opt),
                     np.nan) for m in methods]
        ax1.bar(np.arange(len(methods)) + k * width, vals, width, label=opt)
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_xticks(np.arange(len(methods)) + width * (len(optimizers) - 1) / 2, methods)
    ax1.set_ylabel("Δm metric (%, lower is better)")
    ax1.set_title("Test Δm vs single-task baselines")
    ax1.legend()
    names = sorted({g["method"] for g in groups})
    colors = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(names)}
    styles = {opt: ls for opt, ls in zip(sorted({g["optimizer"] for g in groups}), ["-", "--", ":", "-."] * 3)}
    for g in groups:
        curve = np.mean(g["curves"], axis=0)
        ax2.plot(np.arange(1, len(curve) + 1), 100 * curve, marker="o", color=colors[g["method"]],
                 ls=styles[g["optimizer"]], label=f"{g['method']} / {g['optimizer']}")
    ax2.xaxis.get_major_locator().set_params(integer=True)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("mean validation accuracy (%)")
    ax2.set_title("Validation accuracy (mean over tasks)")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "compare_methods", PRESETS)
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=None)
    parser.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS), default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "optimizers", "seeds", "epochs"))
    out = Path(args.out or f"results/compare_methods/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data = make_multi_fashion(args.data_dir, seed=0, **cfg["data"])
    specs = build_specs(cfg, data_seed=0)
    records = run_grid(specs, data, store, devices=args.devices)
    table, groups = summarize(records)
    header = (f"# MTL methods on Multi-Fashion (preset `{args.preset}`)\n\n"
              f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, seeds {cfg['seeds']}, "
              f"learning rates {LEARNING_RATES}, MultiLeNet.\n\n")
    write_summary(out, header + table, plot(groups) if groups else None, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
