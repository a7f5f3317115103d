"""Study A3 (Paper A, Elich et al.): gradient conflicts are not special to multi-task learning.

    python -m experiments.paper_a.conflicts --preset quick [--from-study results/optimizer_study/quick]

Along one EW training (the best EW configuration of study A1 when
``--from-study`` points at its output: its optimizer, learning rate, weight decay
and schedule, :func:`experiments.paper_a.tuning.best_config`; else EW with Adam at lr
1e-3 and A1's weight decay 1e-5), every ``every`` iterations, draws
at most 8 samples (and at most 8 tasks) of the current batch at random, takes
their per-sample, per-task gradients of the shared parameters (one vmapped
call, :func:`jaxmtl.analysis.per_sample_jacobian`) and compares pairs:
inter-task (same sample, different tasks), inter-sample (same task, different
samples), and the batch-averaged variants (task gradients averaged over the
drawn samples, across tasks; task-averaged gradients, across samples), by
cosine similarity, magnitude similarity, dot product and the fraction of
coordinates of opposite sign (:mod:`jaxmtl.analysis.conflict`). Per epoch: mean,
std, 2.5 and 97.5 percentiles, and the positive/negative split. The verdict
(:func:`verdict`) says whether the inter-task cosine's 2.5-97.5% range lies
within the inter-sample one (the paper's finding on Cityscapes) and compares the
mean magnitude similarities (the paper: lower between tasks).

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

from experiments.cli import run_main, study_data, study_parser  # noqa: E402
from experiments.datasets import DEFAULT  # noqa: E402
from experiments.paper_a.tuning import WEIGHT_DECAY, best_config  # noqa: E402
from experiments.report import markdown_table, open_store, png_bytes, write_summary  # noqa: E402
from experiments.runs import Hook, RunSpec, run_grid  # noqa: E402
from jaxmtl.analysis import GROUPS, STATISTICS, conflict_statistics, per_sample_jacobian, spread  # noqa: E402
from jaxmtl.models import MultiLeNet, shared_mask  # noqa: E402
from jaxmtl.training import classification_losses  # noqa: E402

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


class ConflictProbe(Hook):
    """A :class:`~experiments.runs.Hook` of :func:`~experiments.runs.train_run` that
    collects the statistics every ``every`` steps and summarises them per epoch."""

    def __init__(self, num_tasks: int, num_classes: int, every: int, seed: int):
        model = MultiLeNet(num_tasks=num_tasks, num_classes=num_classes)

        def loss_fn(params, batch):
            return classification_losses(model.apply({"params": params}, batch["image"]), batch["labels"])

        jac = per_sample_jacobian(loss_fn, shared=shared_mask)
        self._stats = jax.jit(lambda params, batch, tasks: conflict_statistics(jac(params, batch)[1][:, tasks]))
        self.every, self.num_tasks = every, num_tasks
        self.rng = np.random.default_rng(seed)
        self.current = self._empty()
        self.everything = self._empty()
        self.epochs: list[dict] = []

    @staticmethod
    def _empty():
        return {g: {s: [] for s in STATISTICS} for g in GROUPS}

    def on_step(self, step, params, batch, rng):
        if step % self.every:
            return
        n = len(batch["labels"])
        pick = np.sort(self.rng.choice(n, min(MAX_SAMPLES, n), replace=False))
        tasks = np.sort(self.rng.choice(self.num_tasks, min(MAX_TASKS, self.num_tasks), replace=False))
        stats = self._stats(params, {k: v[pick] for k, v in batch.items()}, tasks)
        for g in GROUPS:
            for s in STATISTICS:
                values = np.asarray(stats[g][s]).tolist()
                self.current[g][s] += values
                self.everything[g][s] += values

    def on_epoch(self, record, params):
        self.epochs.append({g: {s: spread(v) for s, v in stats.items() if v} for g, stats in self.current.items()})
        self.current = self._empty()

    def overall(self) -> dict:
        return {g: {s: spread(v) for s, v in stats.items() if v} for g, stats in self.everything.items()}

    def record(self) -> dict:
        return {"conflicts": {"epochs": self.epochs, "overall": self.overall()}}


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
        cells.append(f"{100 * np.mean(record['epochs'][e]['val']['accuracy']):.1f}" if e < len(record["epochs"]) else "-")
        per_epoch.append(cells)
    table2 = markdown_table(["epoch", "inter-task cos", "inter-task S_mag", "inter-sample cos",
                             "inter-sample S_mag", "mean val acc (%)"], per_epoch)
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
    parser = study_parser(__doc__, "conflicts", PRESETS, PRESET_NOTES, datasets=(DEFAULT,),
                          why="its per-sample gradient probe is built on MultiLeNet and the classification "
                              "losses of Multi-Fashion")
    parser.add_argument("--from-study", default=None, help="an optimizer_study output directory: train its best EW run")
    parser.add_argument("--optimizer", default="adam", help="the EW run's optimiser, without --from-study")
    parser.add_argument("--lr", type=float, default=1e-3, help="its learning rate, without --from-study")
    parser.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY,
                        help="its weight decay, without --from-study (A1's)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed")
    args = parser.parse_args(argv)
    cfg = PRESETS[args.preset]
    run = best_config(Path(args.from_study), "ew") if args.from_study else \
        dict(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, lr_schedule="constant")
    out = Path(args.out or f"results/conflicts/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data, _ = study_data(args, dict(cfg["data"]))
    spec = RunSpec(method="ew", seed=args.seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                   data=dict(cfg["data"], seed=0), **run)
    key = f"{spec.key}-every{cfg['every']}-samples{MAX_SAMPLES}"
    print(f"{spec.label}: statistics every {cfg['every']} steps on at most {MAX_SAMPLES} samples")
    record, = run_grid([spec], data, store, devices=args.devices, key=lambda s: key,
                       hooks=lambda s: [ConflictProbe(len(data.tasks), data.num_classes, cfg["every"], args.seed)])
    text = (f"# Study A3: gradient conflict and magnitude along EW training (preset `{args.preset}`)\n\n"
            f"{spec.label}, weight decay {spec.weight_decay:g}, {spec.lr_schedule} learning rate"
            f"{' (A1 best EW configuration)' if args.from_study else ''}, {cfg['epochs']} epochs, "
            f"batch {cfg['batch_size']}, statistics every "
            f"{cfg['every']} steps on at most {MAX_SAMPLES} random samples of the batch, shared "
            f"(encoder) parameters of MultiLeNet, {len(data.train)} training canvases.\n\n" + summarize(record))
    write_summary(out, text, plot(record), t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
