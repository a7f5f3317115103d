"""Paper C's Cityscapes complexity ladder (its Fig. 3b): IMTL vs Unit. Scal. as the problem grows.

    python -m experiments.paper_c.ladder --data-dir DIR [--preset paper] [--out results/ladder/paper]

Paper C (Gama & Grassi 2025) makes Cityscapes harder one step at a time and compares
IMTL with Unit. Scal. (the mean of the losses) at each step; the official scripts
(``scripts/cityscapes/progression/``) give the rungs:

=====  ===========================  =========  =======  =====
rung   model                        size       classes  tasks
=====  ===========================  =========  =======  =====
R50    DeepLab, dilated ResNet-50   128x256    7        S+D
R18    DeepLab, dilated ResNet-18   128x256    7        S+D
+I     ResNet-18                    128x256    7        S+D+I
HR     ResNet-18                    256x512    7        S+D+I
19C    ResNet-18                    256x512    19       S+D+I
=====  ===========================  =========  =======  =====

(S segmentation, D disparity, I instance offsets). The last rung is the final
benchmark, where paper C runs every kept SMTO (its Table 4: Unit. Scal. -5.31, IMTL
+0.57 delta-m): ``python -m experiments.paper_c.uniform_vs_specialized --dataset
cityscapes``. At every rung the protocol is the study's (:func:`~experiments.paper_c.
uniform_vs_specialized.run_protocol`): single-task references, Adam with coupled L2
over paper C's learning rate x weight decay grid ({5e-3, 1e-3, 5e-4, 1e-4} x {1e-4,
1e-5, 0}), the learning rate x 0.95 every epoch, one run per configuration, the chosen
one on two more seeds, its test delta-m C at each run's best-validation epoch; IMTL
at the representation with its heads weighted by ``exp(s)``, as the official code.

Presets: ``paper`` as the scripts (batch 32, 150 epochs, 3 seeds; 5 rungs x (12
configurations x (2 methods + 2-3 single-task) + repeats): about 160 runs of 150
epochs on 2380 images, on the order of 300 GPU hours at 256x512 with ResNet-18 (an
estimate: no GPU measured it). ``tiny`` is the tests' (fake files, the few-channel
models, one epoch). Our DeepLabV3+ has a low-level skip the official ASPP head lacks,
and our augmentation is scale-and-crop (paper C: rotation and flip); see
docs/results/paper_c/README.md.

Writes ``results.jsonl`` (every rung's runs, resumable), ``summary.md`` and
``summary.png`` (test delta-m C per rung, mean and sample standard deviation over
seeds) into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

from experiments.cli import run_main, study_parser
from experiments.datasets import DATASETS, PAPER_C_CITYSCAPES, load_dataset
from experiments.paper_c.report import best_configs, label, test_scores
from experiments.paper_c.uniform_vs_specialized import SCHEDULE, Trace, run_protocol, val_seeds
from experiments.report import markdown_table, mean_std, open_store, png_bytes, write_summary
from experiments.runs import run_grid
from experiments.selection import stl_baselines

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LADDER = next(name for name, bench in DATASETS.items() if "paper_c_ladder" in bench.protocols)
"""The data set of the ladder (Cityscapes)."""
RUNGS = DATASETS[LADDER].protocols["paper_c_ladder"]
"""The rungs, as the registry holds them (:data:`experiments.datasets.PAPER_C_LADDER`)."""
METHODS = {"mean": {}, "imtl": {}}
PAPER_19C = {"mean": -5.31, "imtl": 0.57}
"""Paper C's Table 4 at the last rung (test delta-m C, %)."""
PRESET_NOTES = {
    "paper": "the five rungs as paper C's scripts: lr x weight decay grid, batch 32, 150 epochs, 3 seeds (~160 "
             "runs); ~300 GPU hours (estimated)",
    "tiny": "smoke run on fake files: one epoch, the few-channel models (--tiny-model); minutes on CPU",
}
PRESETS = {
    "paper": dict(PAPER_C_CITYSCAPES["paper"], data=dict(), methods=METHODS, fixed_from=0, every=100, extend=0),
    "tiny": dict(PAPER_C_CITYSCAPES["tiny"], data=dict(n_train=4, n_val=4, n_test=4, val_fraction=0.5),
                 seeds=[0, 1], val_seeds=1, methods=METHODS, fixed_from=0, every=100, extend=0),
}


def rung_config(preset: dict, rung: str, data, tiny: bool) -> dict:
    """The study's configuration of one rung: its problem, model and data settings."""
    spec = RUNGS[rung]
    bench = DATASETS[LADDER]
    settings = dict(preset["data"], size=spec["size"], classes=spec["classes"],
                    tasks=list(bench.problems[spec["problem"]]), seed=0)
    arch = None if spec["arch"] == bench.archs[0] else spec["arch"]
    return {"schedule": SCHEDULE, **preset, "problems": [spec["problem"]], "task_sets": bench.problems,
            "data": settings, "fields": {"dataset": LADDER, "arch": arch, "tiny": tiny}, "bench": bench,
            "loaded": data}


def rung_scores(records: list[dict], cfg: dict) -> dict[str, list[dict]]:
    """Per method: the test scores of its chosen configuration's runs at this rung."""
    base_val, base_test = stl_baselines(records, rule="config_mean", choose_seeds=val_seeds(cfg))
    best = best_configs(records, base_val, val_seeds(cfg), cfg["task_sets"])
    return {m: test_scores(c["runs"], base_val, base_test) for (_, m), c in best.items()}


def summary(scores: dict[str, dict[str, list[dict]]]) -> tuple[str, bytes]:
    """The table (rung x method: test delta-m C) and Fig. 3b's plot."""
    rungs = list(scores)
    rows = []
    for rung in rungs:
        s = scores[rung]
        dm = {m: [x["dm_c"] for x in s.get(m, [])] for m in METHODS}
        gap = (f"{np.mean(dm['imtl']) - np.mean(dm['mean']):+.2f}" if dm["imtl"] and dm["mean"] else "-")
        rows.append([rung, RUNGS[rung]["arch"].split("_")[-1], "x".join(map(str, RUNGS[rung]["size"])),
                     RUNGS[rung]["classes"], RUNGS[rung]["problem"],
                     *[mean_std(dm[m]) if dm[m] else "-" for m in METHODS], gap])
    text = ["## Test Δm C (%, ↑) per rung\n",
            markdown_table(["rung", "model", "size", "classes", "tasks", *[label(m) for m in METHODS],
                            "IMTL - Unit. Scal."], rows),
            "\nMean ± sample standard deviation over each chosen configuration's seeds. Paper C's last rung "
            f"(Table 4, 19C): Unit. Scal. {PAPER_19C['mean']:+.2f}, IMTL {PAPER_19C['imtl']:+.2f}; its Fig. 3b "
            "shows IMTL's margin growing along the ladder.\n"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, m in enumerate(METHODS):
        dm = [[x["dm_c"] for x in scores[r].get(m, [])] for r in rungs]
        xs = [j + (i - 0.5) * 0.1 for j, d in enumerate(dm) if d]
        ax.errorbar(xs, [np.mean(d) for d in dm if d], yerr=[np.std(d, ddof=1) if len(d) > 1 else 0 for d in dm if d],
                    marker="o", capsize=3, label=label(m))
    ax.set_xticks(range(len(rungs)), rungs)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("test Δm C (%)")
    ax.set_title("Cityscapes ladder (error bars: sample std over seeds)")
    ax.legend()
    return "\n".join(text) + "\n", png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "ladder", PRESETS, PRESET_NOTES, datasets=(LADDER,), default=LADDER,
                          why="the ladder is paper C's Cityscapes progression")
    parser.add_argument("--rungs", nargs="+", choices=list(RUNGS), default=list(RUNGS),
                        help="which rungs to run (default: all five, in order)")
    args = parser.parse_args(argv)
    if args.arch or args.tasks:
        parser.error("--arch/--tasks: each rung sets its own model and tasks")
    preset = PRESETS[args.preset]
    out = Path(args.out or f"results/ladder/{args.preset}")
    store = open_store(out)
    t0, scores = time.time(), {}
    for rung in args.rungs:
        probe = rung_config(preset, rung, None, args.tiny_model)
        data = load_dataset(LADDER, args.data_dir, **probe["data"])
        cfg = rung_config(preset, rung, data, args.tiny_model)
        key = lambda s: f"{s.key}-every{cfg['every']}"   # noqa: E731 (the trace's spacing shapes the record)
        records, _ = run_protocol(cfg, lambda specs, phase: run_grid(
            specs, data, store, key=key, hooks=lambda s: [Trace(cfg["every"])], phase=f"{rung}: {phase}"))
        scores[rung] = rung_scores(records, cfg)
    text, png = summary(scores)
    header = (f"{preset['epochs']} epochs, batch "
              f"{preset['batch_size']}, learning rates {preset['lrs']} x weight decays {preset['weight_decays']}, "
              f"seeds {preset['seeds']} (configurations chosen on {preset['seeds'][:preset['val_seeds']]}).\n\n")
    write_summary(out, "Paper C's Cityscapes ladder", args.preset, header + text, png, t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
