"""Study A3 (Paper A, Elich et al.): gradient conflicts are not special to multi-task learning.

    python -m experiments.paper_a.conflicts --preset quick [--from-study results/optimizer_study/quick]
    python -m experiments.paper_a.conflicts --preset paper --dataset cityscapes --arch deeplab_resnet50 --data-dir ...
    python -m experiments.paper_a.conflicts --preset paper --dataset celeba [--task-seed 0]

Along one EW training (the best EW configuration of study A1 when
``--from-study`` points at its output: its optimizer, learning rate, weight decay
and schedule, :func:`experiments.paper_a.tuning.best_config`; else EW with Adam at lr
1e-3 and A1's weight decay 1e-5), every ``every`` iterations, draws
at most 8 samples of the current batch at random, takes their per-sample,
per-task gradients of the shared parameters (one vmapped call,
:func:`jaxmtl.analysis.per_sample_jacobian`; each sample's losses with the model
in evaluation mode, batch norm on the run's running statistics and no dropout, so
that a sample's gradient is its own: in training mode the batch statistics tie
the samples together) and compares pairs:
inter-task (same sample, different tasks), inter-sample (same task, different
samples), and the batch-averaged variants (task gradients averaged over the
drawn samples, across tasks; task-averaged gradients, across samples), by
cosine similarity, magnitude similarity, dot product and the fraction of
coordinates of opposite sign (:mod:`jaxmtl.analysis.conflict`). Per epoch: mean,
std, 2.5 and 97.5 percentiles, and the positive/negative split. The verdict
(:func:`verdict`) says whether the inter-task cosine's 2.5-97.5% range lies
within the inter-sample one (the paper's finding on Cityscapes) and compares the
mean magnitude similarities (the paper: lower between tasks).

``--dataset`` (Multi-Fashion by default) takes any benchmark of
:data:`experiments.datasets.DATASETS` with its model (``--arch``; Cityscapes:
``segnet``, ``deeplab_resnet18``, ``deeplab_resnet50``: the paper finds DeepLab's
larger heads reduce the variance of the conflicts) and Paper A's training
settings on it (:mod:`experiments.paper_a.protocols`). A data set of more than 8
tasks (CelebA's 40) is probed on 8 of them drawn once at random (``--task-seed``,
default 0; the summary names them), as the paper does when tasks are many; EW
trains all of them.

Presets (size; GPU hours are estimates for one H100, not measurements: no GPU was available
to us; from the models' FLOPs per step at an assumed 100 TFLOP/s and the NumPy batch pipeline's
CPU time per batch, whichever is larger; summary.md states a run's own time):

* ``tiny``: tests (a few steps on fake files).
* ``quick``: Multi-Fashion 8192 canvases x 8 epochs (minutes on a CPU); Cityscapes 512
  images x 6 epochs, CelebA 8192 x 4 epochs (minutes on a GPU).
* ``paper``: Multi-Fashion, all 120k canvases x 30 epochs, batch 256 (about 0.2 GPU h);
  Cityscapes, 2,678 training images x 300 epochs, batch 64, statistics every 5 steps
  (12.6k steps: SegNet about 1-2 GPU h, DeepLabV3+ ResNet-50 about 3-4 GPU h); CelebA,
  162,770 images x 30 epochs, batch 256 (19k steps, EW's 40 per-task backward passes: about 2 GPU h).

Writes ``results.jsonl`` (one line per training, resumable), ``summary.md`` and
``summary.png`` into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.cli import at_least, out_dir, run_main, study_data, study_parser  # noqa: E402
from experiments.datasets import DATASETS  # noqa: E402
from experiments.paper_a.protocols import preset  # noqa: E402
from experiments.paper_a.tuning import best_config, configuration_options, manual_config  # noqa: E402
from experiments.report import markdown_table, model_label, open_store, png_bytes, write_summary  # noqa: E402
from experiments.runs import Hook, RunSpec, run_grid  # noqa: E402
from experiments.selection import as_metrics, primary_metric  # noqa: E402
from jaxmtl.analysis import GROUPS, STATISTICS, conflict_statistics, per_sample_jacobian, spread  # noqa: E402
from jaxmtl.models import shared_mask  # noqa: E402
from jaxmtl.training import task_losses  # noqa: E402
from jaxmtl.training.steps import split_variables  # noqa: E402

PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=2, batch_size=32, every=2),
    "quick": dict(data=dict(n_train=8192, n_val=1024, n_test=1024), epochs=8, batch_size=64, every=5),
    "paper": dict(data=dict(), epochs=30, batch_size=256, every=5),
}
PRESET_NOTES = {
    "tiny": "smoke run: EW on 128 canvases for 2 epochs, statistics every 2 steps; under a minute on CPU",
    "quick": "EW on 8192 canvases for 8 epochs, statistics every 5 steps on 8 samples; CPU 151 s (measured), "
             "GPU ~1 min",
    "paper": "EW on full Multi-Fashion for 30 epochs, statistics every 5 steps; CPU ~3 h, GPU ~15 min",
}
MAX_SAMPLES = 8
MAX_TASKS = 8
GROUP_LABELS = {"inter_task": "inter-task", "inter_sample": "inter-sample",
                "inter_task_batch": "inter-task (batch-averaged)",
                "inter_sample_batch": "inter-sample (task-averaged)"}


def probed_tasks(num_tasks: int, seed: int) -> list[int]:
    """The tasks whose gradients are compared: all of at most :data:`MAX_TASKS`, else
    :data:`MAX_TASKS` of them drawn once with ``seed`` (sorted)."""
    if num_tasks <= MAX_TASKS:
        return list(range(num_tasks))
    return sorted(np.random.default_rng(seed).choice(num_tasks, MAX_TASKS, replace=False).tolist())


class ConflictProbe(Hook):
    """A :class:`~experiments.runs.Hook` of :func:`~experiments.runs.train_run` that
    collects the statistics of the tasks ``probed`` (indices into ``tasks``, the
    :class:`jaxmtl.data.Task` objects the model ``model`` predicts in order) every
    ``every`` steps and summarises them per epoch."""

    variables = True   # per-sample losses in evaluation mode need the batch-norm statistics

    def __init__(self, model, tasks, input_key: str, probed: list[int], every: int, seed: int):
        chosen = tuple(tasks[t] for t in probed)

        def loss_fn(params, batch, state):
            out = model.apply({"params": params, **state}, batch[input_key])
            return task_losses([out[t] for t in probed], batch, chosen)

        jac = per_sample_jacobian(loss_fn, shared=shared_mask)
        self._stats = jax.jit(lambda params, state, batch: conflict_statistics(jac(params, batch, state)[1]))
        self.every, self.input_key = every, input_key
        self.rng = np.random.default_rng(seed)
        self.current = self._empty()
        self.everything = self._empty()
        self.epochs: list[dict] = []

    @staticmethod
    def _empty():
        return {g: {s: [] for s in STATISTICS} for g in GROUPS}

    def on_step(self, step, variables, batch, rng):
        if step % self.every:
            return
        n = len(jax.tree.leaves(batch[self.input_key])[0])
        pick = np.sort(self.rng.choice(n, min(MAX_SAMPLES, n), replace=False))
        params, state = split_variables(variables)
        stats = self._stats(params, state, jax.tree.map(lambda v: v[pick], batch))
        for g in GROUPS:
            for s in STATISTICS:
                values = np.asarray(stats[g][s]).tolist()
                self.current[g][s] += values
                self.everything[g][s] += values

    def on_epoch(self, record, variables):
        self.epochs.append({g: {s: spread(v) for s, v in stats.items() if v} for g, stats in self.current.items()})
        self.current = self._empty()

    def overall(self) -> dict:
        return {g: {s: spread(v) for s, v in stats.items() if v} for g, stats in self.everything.items()}

    def record(self) -> dict:
        return {"conflicts": {"epochs": self.epochs, "overall": self.overall()}}


def validation_text(record: dict, epoch: dict) -> str:
    """An epoch's validation result in a cell: the mean accuracy (%) where every task's
    primary metric is accuracy, else each task's primary metric."""
    values = as_metrics(epoch["val"], record["tasks"])
    primary = {t: primary_metric(record, t) for t in record["tasks"]}
    if set(primary.values()) == {"accuracy"}:
        return f"{100 * np.mean([values[t]['accuracy'] for t in record['tasks']]):.1f}"
    return ", ".join(f"{t} {m} {values[t][m]:.3g}" for t, m in primary.items())


def summarize(record: dict) -> str:
    overall = record["conflicts"]["overall"]
    rows = []
    for g in GROUPS:
        for s in ("cosine", "magnitude", "dot", "sign_conflict"):
            x = overall[g].get(s)
            if x is None:
                continue
            rows.append([GROUP_LABELS[g], s, f"{x['mean']:.3g}", f"{x['std']:.3g}", f"{x['p2.5']:.3g}",
                         f"{x['p97.5']:.3g}", f"{100 * x['neg_fraction']:.1f}" if s in ("cosine", "dot") else "-",
                         x["n"]])
    table = markdown_table(["pairs", "statistic", "mean", "std", "2.5%", "97.5%", "negative (%)", "pairs seen"], rows)
    per_epoch = []
    for e, ep in enumerate(record["conflicts"]["epochs"]):
        cells = [e + 1]
        for g in ("inter_task", "inter_sample"):
            for s in ("cosine", "magnitude"):
                x = ep[g][s]
                cells.append(f"{x['mean']:.3f} ± {x['std']:.3f}")
        cells.append(validation_text(record, record["epochs"][e]) if e < len(record["epochs"]) else "-")
        per_epoch.append(cells)
    table2 = markdown_table(["epoch", "inter-task cos", "inter-task S_mag", "inter-sample cos",
                             "inter-sample S_mag", "validation (mean acc %, or per task)"], per_epoch)
    return ("## Over the whole training\n\n" + table + "\n\n" + verdict(overall)[2] + "\n\n## Per epoch (mean ± std)\n\n" +
            table2 + "\n")


def verdict(overall: dict) -> tuple[bool, bool, str]:
    """``(inside, lower, text)``: whether the inter-task cosine's 2.5-97.5% range lies
    within the inter-sample one, whether the mean magnitude similarity is lower
    between tasks than between samples, and the sentence saying so (with whether
    each agrees with Paper A)."""
    cos_t, cos_s = overall["inter_task"]["cosine"], overall["inter_sample"]["cosine"]
    mag_t, mag_s = overall["inter_task"]["magnitude"], overall["inter_sample"]["magnitude"]
    inside = cos_s["p2.5"] <= cos_t["p2.5"] and cos_t["p97.5"] <= cos_s["p97.5"]
    lower = mag_t["mean"] < mag_s["mean"]
    text = (f"Inter-task cosine 2.5–97.5% range [{cos_t['p2.5']:.3f}, {cos_t['p97.5']:.3f}] "
            f"{'lies within' if inside else 'is not within'} the inter-sample range "
            f"[{cos_s['p2.5']:.3f}, {cos_s['p97.5']:.3f}] ({'as' if inside else 'unlike'} Paper A); mean "
            f"magnitude similarity {mag_t['mean']:.3f} between tasks vs {mag_s['mean']:.3f} between samples "
            f"({'lower between tasks, as' if lower else 'not lower between tasks, unlike'} Paper A).")
    return inside, lower, text


def plot(record: dict) -> bytes:
    epochs = record["conflicts"]["epochs"]
    x = np.arange(1, len(epochs) + 1)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))

    def band(ax, group, stat, color, label):
        get = lambda k: np.array([ep[group][stat][k] for ep in epochs])
        mean, std = get("mean"), get("std")
        ax.plot(x, mean, color=color, marker="o", label=label)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)
        ax.plot(x, get("p2.5"), color=color, ls="--", lw=0.8)
        ax.plot(x, get("p97.5"), color=color, ls="--", lw=0.8)

    panels = [(axes[0, 0], ("inter_task", "inter_sample"), "cosine", "cosine similarity"),
              (axes[0, 1], ("inter_task", "inter_sample"), "magnitude", "magnitude similarity"),
              (axes[0, 2], ("inter_task_batch", "inter_sample_batch"), "cosine", "cosine, batch-averaged"),
              (axes[1, 2], ("inter_task", "inter_sample"), "dot", "dot product")]
    for ax, groups, stat, title in panels:
        for group, color in zip(groups, ("C0", "C1")):
            band(ax, group, stat, color, GROUP_LABELS[group])
        ax.set_title(f"{title}: mean, ±std (band), 2.5/97.5% (dashed)", fontsize=9)
        ax.legend(fontsize=8)
    axes[1, 2].set_yscale("symlog", linthresh=1e-4)
    ax = axes[1, 0]
    for group, color in (("inter_task", "C0"), ("inter_sample", "C1")):
        ax.plot(x, [ep[group]["cosine"]["pos_mean"] for ep in epochs], color=color, marker="^",
                label=f"{GROUP_LABELS[group]}, positive")
        ax.plot(x, [ep[group]["cosine"]["neg_mean"] for ep in epochs], color=color, marker="v", ls=":",
                label=f"{GROUP_LABELS[group]}, negative")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title("mean of the positive and of the negative cosines", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for group, color in (("inter_task", "C0"), ("inter_sample", "C1")):
        ax.plot(x, [100 * ep[group]["cosine"]["neg_fraction"] for ep in epochs], color=color, marker="o",
                label=f"{GROUP_LABELS[group]}: pairs with cos < 0")
        ax.plot(x, [100 * ep[group]["sign_conflict"]["mean"] for ep in epochs], color=color, ls="--",
                label=f"{GROUP_LABELS[group]}: coordinates of opposite sign")
    ax.set_title("conflict fractions (%)", fontsize=9)
    ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "conflicts", PRESETS, PRESET_NOTES, pairs="conflict is between tasks")
    configuration_options(parser, "train its best EW run")
    parser.add_argument("--seed", type=at_least(0), default=0, help="the training seed")
    parser.add_argument("--task-seed", type=at_least(0), default=0,
                        help=f"draws the {MAX_TASKS} tasks probed where a data set has more (CelebA)")
    args = parser.parse_args(argv)
    cfg = preset(PRESETS, args.preset, args.dataset)
    bench = DATASETS[args.dataset]
    run = manual_config(args, cfg["lr_schedule"])   # a UsageError beside --from-study
    if args.from_study:
        run = best_config(Path(args.from_study), "ew")
    out = out_dir(args, "conflicts")
    store = open_store(out)
    t0 = time.time()
    data, dataset = study_data(args, dict(cfg["data"]))
    spec = RunSpec(method="ew", seed=args.seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                   data=dict(cfg["data"], seed=0), **run, **dataset)
    tasks = bench.tasks(data, spec.tasks)
    probed = probed_tasks(len(tasks), args.task_seed)
    drawn = len(probed) < len(tasks)
    key = f"{spec.key}-every{cfg['every']}-samples{MAX_SAMPLES}" + (f"-tasks{args.task_seed}" if drawn else "")
    model = bench.model(data, spec.arch or bench.archs[0], spec.tiny, spec.dropout, spec.tasks)
    print(f"{spec.label}: statistics every {cfg['every']} steps on at most {MAX_SAMPLES} samples")
    record, = run_grid([spec], data, store, devices=args.devices, key=lambda s: key,
                       hooks=lambda s: [ConflictProbe(model, tasks, bench.input_key, probed, cfg["every"], args.seed)])
    names = [tasks[t].name for t in probed]
    which = (f"the {MAX_TASKS} tasks {', '.join(names)}, drawn from the {len(tasks)} with --task-seed "
             f"{args.task_seed} (EW trains all {len(tasks)})" if drawn else f"the tasks {', '.join(names)}")
    text = (f"{spec.label}, weight decay {spec.weight_decay:g}, {spec.lr_schedule} learning rate"
            f"{' (A1 best EW configuration)' if args.from_study else ''}, {cfg['epochs']} epochs, "
            f"batch {cfg['batch_size']}, statistics every "
            f"{cfg['every']} steps on at most {MAX_SAMPLES} random samples of the batch and {which}; shared "
            f"(encoder) parameters of {model_label(bench, spec.arch, spec.tiny, class_name=True)}, "
            f"{len(data.train)} training {bench.unit}.\n\n" + summarize(record))
    write_summary(out, f"Study A3: gradient conflict and magnitude along EW training on {bench.title}", args.preset,
                  text, plot(record), t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
