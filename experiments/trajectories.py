"""Study of Paper B (Mueller, Dredze, Andrews, TMLR 2024): can optimization trajectories
explain multi-task transfer?

    python -m experiments.trajectories --preset tiny|quick|paper [--out results/trajectories/quick]

Protocol (ours, ``../shared/STUDIES.md``), on Multi-Fashion with MultiLeNet and
Adam (lr 1e-3, no weight decay): for every seed, one single-task (STL) run per
task and one multi-task (MTL) run per method (EW, MGDA, PCGrad, UPGrad,
Nash-MTL by default), all from the same initialisation and the same data order
(:func:`experiments.common.train_run` with the seed). Along each run
(:class:`TrajectoryProbe`, through ``train_run``'s hooks):

* every ``every`` steps, per task: the training loss on a fixed subset of the
  training set (``train_eval`` canvases, no dropout) and the validation loss and
  accuracy;
* at ``checkpoints`` steps spread evenly over the run (the first and last
  included), per task, on a fixed probe batch (the first ``probe`` training
  canvases): sharpness (largest Hessian eigenvalue of the task loss over all
  parameters, ``hessian_iters`` Lanczos steps), the empirical Fisher trace,
  McCandlish et al.'s simple noise scale and the gradient coherence (from
  per-example gradients of all parameters);
* every ``cos_every`` steps, per task: the cosine of the task's gradient on the
  step's batch with the update the optimizer applied (the parameter change),
  on the shared encoder.

Reported (:mod:`experiments.paper_b_analysis`): the generalization gap at
comparable training loss (MTL minus STL validation loss and accuracy at the step
each run first reaches a training-loss level, interpolated) per task against the
level and the MTL run's progress, and where it opens; the correlation across runs
and checkpoints of the gap with each quantity's MTL-minus-STL difference; the
correlation of the update cosine (conflict) with the task's optimization deficit
against its STL run and, separately, with the gap.

Writes ``results.jsonl`` (one line per run with its trajectory, resumable),
``summary.md`` and ``summary.png`` into ``--out``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments import paper_b_analysis as pb  # noqa: E402
from experiments.common import (RunSpec, markdown_table, open_store, png_bytes, steps_per_run,  # noqa: E402
                                study_parser, train_run, with_overrides, write_summary)
from jaxmtl import value_and_jacobian  # noqa: E402
from jaxmtl.analysis import (fisher_trace, gradient_coherence, gradient_noise_scale,  # noqa: E402
                             hessian_top_eigenvalue, per_sample_jacobian, update_cosines)
from jaxmtl.data import Split, batches, make_multi_fashion  # noqa: E402
from jaxmtl.models import MultiLeNet, shared_mask  # noqa: E402
from jaxmtl.training import classification_losses, evaluate, make_eval_step  # noqa: E402

METHOD_LABELS = {"ew": "EW", "mgda": "MGDA", "pcgrad": "PCGrad", "upgrad": "UPGrad", "nash_mtl": "Nash-MTL"}
PROBE_FIELDS = ("every", "checkpoints", "probe", "train_eval", "hessian_iters", "cos_every")
"""Preset fields that shape a trajectory (part of a run's key)."""
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=32), epochs=2, batch_size=32, seeds=[0],
                 methods=["ew", "mgda"], every=2, checkpoints=3, probe=8, train_eval=64, hessian_iters=3,
                 cos_every=1, levels=4),
    "quick": dict(data=dict(n_train=4096, n_val=1024, n_test=512), epochs=3, batch_size=64, seeds=[0, 1],
                  methods=list(METHOD_LABELS), every=8, checkpoints=6, probe=64, train_eval=1024,
                  hessian_iters=10, cos_every=1, levels=8),
    "paper": dict(data=dict(), epochs=10, batch_size=256, seeds=[0, 1, 2], methods=list(METHOD_LABELS),
                  every=50, checkpoints=20, probe=256, train_eval=4096, hessian_iters=20, cos_every=1,
                  levels=12),
}
OPTIMIZER, LR = "adam", 1e-3


@functools.lru_cache(maxsize=None)
def probe_functions(num_tasks: int, num_classes: int, hessian_iters: int):
    """Jitted ``(quantities, cosines, eval_step)`` of MultiLeNet, compiled once per shape.

    ``quantities(params, batch, key)``: per task ``(T,)`` sharpness, Fisher
    trace, simple noise scale and coherence on ``batch``; ``cosines(params,
    batch, new_params)``: per task the cosine of the task gradient on ``batch`` at
    ``params`` with the step ``new_params - params``, on the shared encoder.
    """
    model = MultiLeNet(num_tasks=num_tasks, num_classes=num_classes)

    def loss_fn(params, batch):
        return classification_losses(model.apply({"params": params}, batch["image"]), batch["labels"])

    per_example = per_sample_jacobian(loss_fn)
    task_grads = value_and_jacobian(loss_fn, shared=shared_mask)

    @jax.jit
    def quantities(params, batch, key):
        grads = per_example(params, batch)[1]
        sharp = jax.lax.map(lambda t: hessian_top_eigenvalue(lambda p: loss_fn(p, batch)[t], params,
                                                             key=jax.random.fold_in(key, t),
                                                             num_iters=hessian_iters),
                            jnp.arange(num_tasks))  # one Lanczos loop compiled for all tasks
        return {"sharpness": sharp, "fisher_trace": fisher_trace(grads, task_axis=True),
                "noise_scale": gradient_noise_scale(grads, task_axis=True).simple,
                "coherence": gradient_coherence(grads, task_axis=True)}

    @jax.jit
    def cosines(params, batch, new_params):
        grads = task_grads(params, batch)[1]["encoder"]
        return update_cosines(grads, jax.tree.map(jnp.subtract, new_params["encoder"], params["encoder"]))

    return quantities, cosines, make_eval_step(model.apply)


def checkpoint_steps(total: int, every: int, count: int) -> list[int]:
    """``count`` analysis steps spread over ``[0, total]``, on the logging grid, the last being ``total``."""
    grid = {min(int(round(x / every)) * every, total) for x in np.linspace(0, total, count)}
    return sorted(grid | {0, total})


class TrajectoryProbe:
    """``on_step``/``on_epoch`` hooks of :func:`experiments.common.train_run` that log a
    run's trajectory (see the module docstring); :meth:`trajectory` is the result."""

    def __init__(self, data, cfg: dict, steps_per_epoch: int, epochs: int, seed: int):
        num_tasks = len(data.tasks)
        self.quantities, self.cosines, self.eval_step = probe_functions(num_tasks, data.num_classes,
                                                                        cfg["hessian_iters"])
        n = cfg["train_eval"]
        self.train_subset = Split(data.train.images[:n], data.train.labels[:n])
        self.val = data.val
        self.probe = next(batches(data.train, cfg["probe"]))
        self.every, self.cos_every, self.steps_per_epoch = cfg["every"], cfg["cos_every"], steps_per_epoch
        self.total = steps_per_epoch * epochs
        self.checkpoints = set(checkpoint_steps(self.total, self.every, cfg["checkpoints"]))
        self.key = jax.random.PRNGKey(seed)
        self.log = {"steps": [], "train_loss": [], "val_loss": [], "val_acc": []}
        self.ck = {"steps": [], **{q: [] for q in pb.QUANTITIES}}
        self.cos = {"steps": [], "values": []}
        self.pending, self.last = None, None

    def _observe(self, step: int, params) -> None:
        if step == self.last:
            return
        self.last = step
        if self.pending is not None:
            k, before, batch = self.pending
            self.cos["steps"].append(k)
            self.cos["values"].append(np.asarray(self.cosines(before, batch, params)).tolist())
            self.pending = None
        if step % self.every == 0 or step == self.total:
            train = evaluate(self.eval_step, params, batches(self.train_subset, 512, drop_last=False))
            val = evaluate(self.eval_step, params, batches(self.val, 512, drop_last=False))
            self.log["steps"].append(step)
            self.log["train_loss"].append(train["loss"])
            self.log["val_loss"].append(val["loss"])
            self.log["val_acc"].append(val["accuracy"])
        if step in self.checkpoints:
            values = self.quantities(params, self.probe, jax.random.fold_in(self.key, step))
            self.ck["steps"].append(step)
            for q in pb.QUANTITIES:
                self.ck[q].append(np.asarray(values[q]).tolist())

    def on_step(self, step, params, batch, rng) -> None:
        self._observe(step, params)
        if step % self.cos_every == 0:
            self.pending = (step, params, batch)

    def on_epoch(self, record, params) -> None:
        self._observe(self.steps_per_epoch * record["epoch"], params)

    def trajectory(self) -> dict:
        return {**self.log, "checkpoints": self.ck, "cosines": self.cos}


def build_specs(cfg: dict) -> list[RunSpec]:
    common = dict(optimizer=OPTIMIZER, lr=LR, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                  data=dict(cfg["data"], seed=0))
    specs = []
    for seed in cfg["seeds"]:
        specs += [RunSpec(method="stl", stl_task=t, seed=seed, **common) for t in (0, 1)]
        specs += [RunSpec(method=m, seed=seed, **common) for m in cfg["methods"]]
    return specs


def record_key(spec: RunSpec, cfg: dict) -> str:
    blob = json.dumps({f: cfg[f] for f in PROBE_FIELDS}, sort_keys=True)
    return f"{spec.key}-{hashlib.sha1(blob.encode()).hexdigest()[:6]}"


def run_all(specs: list[RunSpec], data, store, cfg: dict) -> list[dict]:
    """Trains (with a :class:`TrajectoryProbe`) the runs ``store`` lacks; returns all records."""
    todo = [s for s in specs if record_key(s, cfg) not in store]
    print(f"{len(specs)} runs, {len(specs) - len(todo)} already done in {store.path}; "
          f"data: {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test canvases")
    with tqdm(total=sum(steps_per_run(s, data) for s in todo), unit="step", dynamic_ncols=True) as bar:
        for spec in todo:
            bar.set_description(spec.label)
            spe = len(data.train) // spec.batch_size
            probe = TrajectoryProbe(data, cfg, spe, spec.epochs, spec.seed)
            record = train_run(spec, data, progress=bar, on_step=probe.on_step, on_epoch=probe.on_epoch)
            store.add({**record, "key": record_key(spec, cfg), "trajectory": probe.trajectory()})
    return [store.get(record_key(s, cfg)) for s in specs]


def pairs_of(records: list[dict]) -> dict[tuple[str, int], list[tuple[dict, dict]]]:
    """``{(method, task): [(stl, mtl) trajectories, one pair per seed]}``."""
    stl = {(r["spec"]["seed"], r["spec"]["stl_task"]): r["trajectory"] for r in records
           if r["spec"]["stl_task"] is not None}
    out: dict = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is None:
            for t in range(len(r["tasks"])):
                if (s["seed"], t) in stl:
                    out.setdefault((s["method"], t), []).append((stl[(s["seed"], t)], r["trajectory"]))
    return out


def fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def gap_tables(pairs: dict, methods: list[str], tasks: list[str], n_levels: int) -> tuple[str, dict]:
    """Per task, the gap (validation loss and accuracy, MTL minus STL, mean over seeds) at
    each shared training-loss level, with the MTL run's progress there, and where it opens."""
    text, curves = [], {}
    for t, task in enumerate(tasks):
        here = [m for m in methods if (m, t) in pairs]
        levels = pb.shared_levels([p for m in here for p in pairs[(m, t)]], t, n_levels)
        rows = [[f"{lv:.3f}"] for lv in levels]
        opens = ["opens at"]
        for m in here:
            loss = np.array([[pb.gap_at(s, x, t, lv) for lv in levels] for s, x in pairs[(m, t)]], float)
            acc = np.array([[pb.gap_at(s, x, t, lv, "val_acc") for lv in levels] for s, x in pairs[(m, t)]], float)
            progress = np.array([[pb.at_level(x, t, lv, "val_loss")[0] / x["steps"][-1] for lv in levels]
                                 for _, x in pairs[(m, t)]], float)
            loss, acc, progress = loss.mean(0), 100 * acc.mean(0), 100 * progress.mean(0)
            curves[(m, t)] = (levels, loss)
            for row, gl, ga, pr in zip(rows, loss, acc, progress):
                row.append(f"{fmt(gl)} / {fmt(ga, 1)} ({pr:.0f}%)")
            i = pb.opens_at(loss)
            opens.append("not within the grid" if i is None else f"loss {levels[i]:.3f} ({progress[i]:.0f}%)")
        header = ["train loss", *[METHOD_LABELS.get(m, m) for m in here]]
        text.append(f"### Task {task}\n\n" + markdown_table(header, rows + [opens]))
    note = ("Each cell: MTL minus STL validation loss / accuracy (percentage points) at the step where "
            "each run first reaches the training-loss level (interpolated), mean over seeds, and in "
            "parentheses the MTL run's training progress there. Positive loss gap: multi-task training "
            f"generalizes worse at that training loss. 'opens at': the first level from which "
            f"|loss gap| >= {pb.GAP_THRESHOLD} at every later level.")
    return "\n\n".join(text) + "\n\n" + note, curves


def explanation_table(pairs: dict, tasks: list[str]) -> tuple[str, list[dict]]:
    points = [dict(p, method=m, task=t) for (m, t), ps in pairs.items() for s, x in ps
              for p in pb.explanation_points(s, x, t)]
    rows = []
    for q, label in pb.QUANTITIES.items():
        r, rho, n = pb.correlation([p[q] for p in points], [p["gap"] for p in points])
        per_task = [pb.correlation([p[q] for p in points if p["task"] == t],
                                   [p["gap"] for p in points if p["task"] == t])[0] for t in range(len(tasks))]
        rows.append([label, fmt(r, 2), fmt(rho, 2), n, *[fmt(v, 2) for v in per_task]])
    header = ["quantity (MTL − STL)", "Pearson r", "Spearman ρ", "points", *[f"r ({t})" for t in tasks]]
    return markdown_table(header, rows), points


def conflict_table(pairs: dict, methods: list[str], tasks: list[str]) -> tuple[str, list[dict]]:
    points, rows = [], []
    for m in methods:
        for t, task in enumerate(tasks):
            if (m, t) not in pairs:
                continue
            mine = [dict(p, method=m, task=t) for s, x in pairs[(m, t)] for p in pb.conflict_points(s, x, t)]
            points += mine
            cos = np.concatenate([np.asarray(x["cosines"]["values"])[:, t] for _, x in pairs[(m, t)]])
            stl_cos = np.concatenate([np.asarray(s["cosines"]["values"])[:, t] for s, _ in pairs[(m, t)]])
            rows.append([METHOD_LABELS.get(m, m), task, f"{cos.mean():.3f}", f"{stl_cos.mean():.3f}",
                         f"{100 * np.mean(cos < 0):.0f}%", *cells(mine)])
    rows.append(["all", "all", "", "", "", *cells(points)])
    header = ["method", "task", "mean cos (MTL)", "mean cos (STL)", "steps with cos < 0",
              "r(cos, deficit)", "r(cos, gap)", "intervals"]
    return markdown_table(header, rows), points


def cells(points: list[dict]) -> list:
    r_def, _, n = pb.correlation([p["cosine"] for p in points], [p["deficit"] for p in points])
    r_gap = pb.correlation([p["cosine"] for p in points],
                           [np.nan if p["gap"] is None else p["gap"] for p in points])[0]
    return [fmt(r_def, 2), fmt(r_gap, 2), n]


def summarize(records: list[dict], cfg: dict) -> tuple[str, dict | None]:
    pairs = pairs_of([r for r in records if r is not None and r["trajectory"]["steps"]])
    if not pairs:
        return "(no complete STL + MTL pair yet)\n", None
    tasks = records[0]["tasks"]
    runs = [[r["label"], r["trajectory"]["steps"][-1],
             *[f"{r['trajectory'][k][-1][t]:.3f}" for k in ("train_loss", "val_loss") for t in range(len(tasks))],
             *[f"{100 * r['trajectory']['val_acc'][-1][t]:.1f}" for t in range(len(tasks))]]
            for r in records if r is not None and r["trajectory"]["steps"]]
    runs_header = ["run", "steps", *[f"{k} {t}" for k in ("train loss", "val loss", "val acc %") for t in tasks]]
    gaps, curves = gap_tables(pairs, cfg["methods"], tasks, cfg["levels"])
    expl, expl_points = explanation_table(pairs, tasks)
    conflict, conflict_points = conflict_table(pairs, cfg["methods"], tasks)
    text = ("## Runs (last logged step)\n\n" + markdown_table(runs_header, runs) +
            "\n\nSTL runs train one task; their other task's columns are those of an untrained head.\n\n"
            "## Generalization gap at comparable training loss\n\n" + gaps +
            "\n\n## Candidate explanations: correlation with the gap\n\n" + expl +
            "\n\nAcross methods, seeds, tasks and the MTL run's analysis checkpoints (the first "
            "excluded): at the MTL training loss of the checkpoint, the validation-loss gap against each "
            "quantity's MTL-minus-STL difference (quantities interpolated between checkpoints at each "
            "run's crossing step). Non-finite noise scales (batch too small to resolve the mean "
            "gradient) are left out.\n\n"
            "## Conflict vs optimization\n\n" + conflict +
            "\n\nPer logged interval of an MTL run: cos = mean cosine of the task's gradient (step "
            "batch, shared encoder) with the applied update; deficit = the STL run's training-loss "
            "decrease over the same steps minus the MTL run's (positive: the task is optimised less "
            "under MTL); gap = validation-loss gap at the MTL training loss at the interval's end. "
            "A negative r(cos, deficit) means more conflict goes with a larger deficit. 'mean cos "
            "(STL)': the same cosine in the task's STL run (Adam's preconditioning keeps it below 1).\n")
    return text, {"curves": curves, "explanations": expl_points, "conflicts": conflict_points, "tasks": tasks}


def plot(data: dict, methods: list[str]) -> bytes:
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    for t, task in enumerate(data["tasks"]):
        ax = axes[0, t]
        for m in methods:
            if (m, t) in data["curves"]:
                levels, gap = data["curves"][(m, t)]
                ax.plot(levels, gap, "o-", color=colors[m], label=METHOD_LABELS.get(m, m), ms=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("training loss level (training progresses →)")
        ax.set_ylabel("val loss gap (MTL − STL)")
        ax.set_title(f"Gap at comparable training loss: {task}")
        ax.legend(fontsize=8)

    def scatter(ax, points, x, y, xlabel, ylabel):
        pts = [p for p in points if p[x] is not None and p[y] is not None]
        for m in methods:
            sel = [p for p in pts if p["method"] == m]
            ax.scatter([p[x] for p in sel], [p[y] for p in sel], s=12, color=colors[m],
                       marker="o", alpha=0.7, label=METHOD_LABELS.get(m, m))
        r, _, n = pb.correlation([p[x] for p in pts], [p[y] for p in pts])
        ax.set_title(f"{ylabel} vs {xlabel}: r = {fmt(r, 2)} (n = {n})", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    scatter(axes[0, 2], data["conflicts"], "cosine", "deficit", "cos(g_t, update)", "optimization deficit")
    scatter(axes[0, 3], data["conflicts"], "cosine", "gap", "cos(g_t, update)", "val loss gap")
    for ax, (q, label) in zip(axes[1], pb.QUANTITIES.items()):
        scatter(ax, data["explanations"], q, "gap", f"Δ {label}", "val loss gap")
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "trajectories", PRESETS)
    parser.add_argument("--methods", nargs="+", choices=list(METHOD_LABELS), default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "seeds", "epochs"))
    out = Path(args.out or f"results/trajectories/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data = make_multi_fashion(args.data_dir, seed=0, **cfg["data"])
    records = run_all(build_specs(cfg), data, store, cfg)
    text, plot_data = summarize(records, cfg)
    header = (f"# Paper B: optimization trajectories and multi-task transfer on Multi-Fashion "
              f"(preset `{args.preset}`)\n\n"
              f"MultiLeNet, {OPTIMIZER} lr {LR:g}, {cfg['epochs']} epochs, batch {cfg['batch_size']}, seeds "
              f"{cfg['seeds']}, {len(data.train)}/{len(data.val)} train/val canvases; logged every "
              f"{cfg['every']} steps (training loss on {min(cfg['train_eval'], len(data.train))} training "
              f"canvases), {cfg['checkpoints']} analysis checkpoints on a probe batch of {cfg['probe']} "
              f"({cfg['hessian_iters']} Lanczos steps), update cosines every {cfg['cos_every']} step(s).\n\n")
    write_summary(out, header + text, plot(plot_data, cfg["methods"]) if plot_data else None, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
