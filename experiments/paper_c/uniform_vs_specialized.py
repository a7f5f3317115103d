"""Study C (paper C, Gama & Grassi 2025): uniform loss vs specialized optimizers, under fair tuning.

    python -m experiments.paper_c.uniform_vs_specialized --preset quick [--out results/uniform_vs_specialized/quick]

Paper C's claim: the mean of the task losses ("Unit. Scal.") tuned as carefully as
the specialized multi-task optimizers (SMTOs) matches them on easy problems;
SMTOs help once problems get harder; and fixed weights taken from an SMTO's run do
as well as the SMTO. Protocol, as its official code (``Gabriel-SGama/UnitScal_vs_SMTOs``:
``supervised_experiments/``, ``scripts/mnist/*.sh``, ``evaluation/``) runs it on
Multi-MNIST (:mod:`jaxmtl.data.multi_mnist`: normalised canvases, the original items as
reconstruction targets; :class:`jaxmtl.models.MixedLeNet`: element-wise dropout in the
encoder and the heads, a 256-wide linear decoder):

1. the grid: every single-task baseline (each task alone on the network of the first
   problem with the task) and every method on every problem (the pairs CL+RR, CL+CR,
   RL+RR; *ours*: CL+CR+RL) over learning rate x dropout x the method's own grid,
   with Adam, coupled L2 weight decay (0 on Multi-MNIST) and the learning rate x 0.95
   after every epoch, each on the first ``val_seeds`` seeds (paper C: 5);
2. a run's epoch is its best on validation (paper C's delta-m, per-task relative
   change averaged over tasks, higher is better); a configuration's score is the
   mean over the ``val_seeds`` seeds of that best validation delta-m, and each
   (problem, method) keeps its best configuration (``extend``: a choice at the
   edge of the learning-rate grid adds the next learning rate past it, as paper A's
   studies do, until none is at an edge);
3. the single-task reference of a task is its best configuration (same rule, on
   its validation metric), each metric averaged over all seeds of that configuration;
4. the chosen configurations run on the other seeds (paper C: 10 in all); a
   method's result is the mean (and spread) over all its seeds at each run's best
   validation epoch, on test;
5. fixed weights from the ``fixed_from`` best SMTOs of each problem: the per-epoch
   mean weights of the chosen configuration's first run, each epoch normalised to
   sum 1, an EMA with beta 0.9, its last value renormalised (paper C's "FwLe0.9"),
   retrained as ``sum_t w_t L_t`` at the SMTO's configuration on every seed;
6. mean rank as paper C: methods ranked on each task metric (mean over seeds) within
   a problem, ranks averaged within a task, then over tasks (delta-m not ranked).

Every ``every`` steps a run records the method's weights and the interference
statistic (mean over tasks of ``cos(g_t, mean_s g_s)`` on the shared encoder), a
:class:`Trace` hook computed inside the jitted step from its task gradients.

Methods as paper C runs them: UW in Kendall et al.'s per-task form (``eta + L
e^{-2 eta}`` for a classification, ``eta + L e^{-2 eta} / 2`` for a reconstruction)
with ``eta`` trained by the model's Adam; IMTL, MGDA-UB (loss+ normalisation) and
GradDrop on the gradients of the 50-d representation, not of the encoder's
parameters (:data:`AT_REPRESENTATION`, :mod:`jaxmtl.training.representation`), IMTL's
heads weighted by ``exp(s_t)`` and its loss scales by Adam at the run's learning
rate, GradDrop's signs through the activation with one draw per feature and the
official rescaling; Nash-MTL's shared update clipped at norm 1 and its heads
weighted by ``alpha``; FAMO's "after" losses on the step's own batch
(``prev_batch_losses``); RLW (Normal and Dirichlet), SI; all 16 of paper C's methods.
RotoGrad (:func:`jaxmtl.training.representation.rotated`): its magnitude scaling and
its rotations of the 50-d representation, trained by their own Adam. Auto-Lambda
(:mod:`jaxmtl.training.held_out`): its weights start at 0.1 and move before each step
by the official finite-difference meta-gradient of a validation batch of 100 after a
virtual step at the model's current learning rate, with their own Adam at the model's
learning rate times ``lr_relation`` (paper C's grid {1e3, ..., 1e-3}).
Departures, stated in the summary: the partner of a canvas item is drawn from the seed (paper C ships index
files); items default to Fashion-MNIST (offline here; ``--source mnist --data-dir``).

Presets: ``paper`` is paper C's Multi-MNIST grid (lr in {0.01, 0.0075, 0.005, 0.0025,
0.001, 0.00075, 0.0005} x dropout in {0, ..., 0.5}, 100 epochs, batch 256, 5 + 5
seeds; CAGrad c, FAMO gamma, CDTT alpha and RotoGrad's and Auto-Lambda's lr_relation grids; every method on CL+RR, the
screened ones (:data:`SCREENED`) on the other pairs): about 19,000 runs of 100
epochs, on the order of 230 GPU hours (an estimate, not a measurement: our CPU
step time at batch 256 over an assumed 50x GPU speed-up). On Cityscapes and QM9
(``--dataset``) the data set's own protocol applies (its registry entry: paper C's
batch, epochs and learning-rate x weight-decay grids, QM9's ReduceLROnPlateau), on
the final Cityscapes benchmark (segmentation, disparity, instance offsets) and the 11
QM9 targets; the Cityscapes complexity ladder of paper C's Fig. 3b is
:mod:`experiments.paper_c.ladder`. ``quick`` (CPU:
about an hour on 2 idle cores, about 230 runs) reduces the data (768/600/1000
canvases), the epochs (16, enough for most runs to peak before the last), the
method set (8; RotoGrad and Auto-Lambda at one ``lr_relation``), the grid (3
learning rates, extended at its edges; no dropout: every configuration paper C chose
on CL+RR has dropout 0), the seeds (2 + 1) and the
problems (the three pairs); ``tiny`` is the tests'.

Writes ``results.jsonl`` (one line per run, resumable), ``summary.md``,
``summary.png`` (delta-m with its spread), ``weights.png`` and
``interference.png`` into ``--out``.
"""
from __future__ import annotations

import itertools
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import (UsageError, at_least, method_names, out_dir, run_main, study_data, study_parser,
                             with_overrides)
from experiments.datasets import DATASETS
from experiments.paper_c.report import UNIFORM, best_configs, report
from experiments.report import open_store, write_summary
from experiments.runs import MODEL_OPTIMIZER, Hook, RunSpec, run_grid, shared_rows
from experiments.selection import stl_baselines, stl_configurations
from jaxmtl import metrics as M
from jaxmtl.data import Task
from jaxmtl.data.multi_mnist import SOURCES
from jaxmtl.protocol import recorded_weights
from jaxmtl.training import atomic_write

WITH_PROBLEMS = tuple(name for name, bench in DATASETS.items() if bench.problems)
"""The data sets that name task sets to compare (paper C's Multi-MNIST)."""
OPTIMIZER, SCHEDULE = "adam", "exp_decay"
"""Paper C's optimiser and default learning-rate schedule (a data set's protocol may change it)."""
PAPER_LRS = [0.01, 0.0075, 0.005, 0.0025, 0.001, 0.00075, 0.0005]
PAPER_DROPOUTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
PAPER_METHODS = {
    "mean": {}, "uncertainty": {}, "mgda_loss_plus": {}, "pcgrad": {}, "graddrop": {},
    "edm": {}, "imtl": {}, "cagrad": {"c": [0.2, 0.5, 0.8]}, "rotograd": {"lr_relation": [5.0, 1.0, 0.5, 0.1]},
    "nash_mtl": {}, "scale_invariant": {}, "rlw": {}, "rlw_dirichlet": {}, "cdtt": {"alpha": [0.2, 0.4, 0.6, 0.8, 1.0]},
    "famo": {"gamma": [1e-2, 1e-3, 1e-4]},
    "auto_lambda": {"lr_relation": [1e3, 1e2, 10.0, 1.0, 0.1, 0.01, 1e-3]},
}
"""Paper C's Multi-MNIST methods (registry names) and their grids."""
SCREENED = {"mean", "cagrad", "cdtt", "edm", "famo", "imtl", "nash_mtl", "rotograd", "auto_lambda"}
"""The methods paper C carries past CL+RR, its screening problem (``scripts/mnist/multi_task_smto_best.sh``:
GradDrop, MGDA-UB, PCGrad, RLW, SI and UW are run on CL+RR only)."""
QUICK_METHODS = {"mean": {}, "uncertainty": {}, "imtl": {}, "cagrad": {"c": [0.5]}, "nash_mtl": {},
                 "famo": {"gamma": [1e-3]}, "rotograd": {"lr_relation": [1.0]}, "auto_lambda": {"lr_relation": [1.0]}}
"""``quick``'s methods: Unit. Scal., four SMTOs paper C's Table 3 puts above it on CL+RR (CAGrad -2.14,
IMTL -2.24, FAMO -2.67, Nash-MTL -3.06 vs -8.95 delta-m), UW, which it screens out, and the two methods
with parameters of their own: RotoGrad (its rotations) and Auto-Lambda (a held-out batch a step), each
at one ``lr_relation`` (1: their learning rate equal to the model's; inside paper C's grids)."""
PAPER_PROBLEMS = ["CL+RR", "CL+CR", "RL+RR"]
EMA_BETA = 0.9
"""The EMA of paper C's fixed weights."""
PRESETS = {
    "tiny": dict(data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=16, seeds=[0, 1], val_seeds=1,
                 problems=["CL+RR"], methods={"mean": {}, "imtl": {}, "rotograd": {"lr_relation": [1.0]},
                                                "auto_lambda": {"lr_relation": [1.0]}},
                 lrs=[1e-3], dropouts=[0.0],
                 weight_decays=[0.0], fixed_from=1, every=2, extend=0),
    "quick": dict(data=dict(n_train=768, n_val=600, n_test=1000), epochs=16, batch_size=64, seeds=[0, 1, 2],
                  val_seeds=2, problems=PAPER_PROBLEMS, methods=QUICK_METHODS, lrs=[0.005, 0.0025, 0.001],
                  dropouts=[0.0], weight_decays=[0.0], fixed_from=1, every=12, extend=2),
    "paper": dict(data=dict(), epochs=100, batch_size=256, seeds=list(range(10)), val_seeds=5,
                  problems=PAPER_PROBLEMS, methods=PAPER_METHODS, lrs=PAPER_LRS, dropouts=PAPER_DROPOUTS,
                  weight_decays=[0.0], fixed_from=1, every=100, extend=0, screen=("CL+RR", SCREENED)),
}
"""``problems=None``: every task set of the data set."""
PRESET_NOTES = {
    "tiny": "smoke run: Unit. Scal., IMTL, RotoGrad and Auto-Lambda on CL+RR, 64 canvases, 2 epochs, 2 seeds; "
            "about a minute on CPU",
    "quick": "8 methods x 3 problems x 3 learning rates (+ extension), 768 canvases, 16 epochs, 3 seeds; "
             "CPU about an hour idle, GPU ~15 min (estimated)",
    "paper": "paper C's 16 methods, grids and 10 seeds, 100 epochs (~19,000 runs); ~230 GPU hours (estimated "
             "from CPU step times, see the module docstring)",
}


def interference(task_grads, params) -> jax.Array:
    """Paper C's interference statistic: ``mean_t cos(g_t, mean_s g_s)`` over the shared
    parameters (the stacked leaves of ``task_grads``, :func:`jaxmtl.value_and_jacobian`), or
    over the representation for a method that acts there (``task_grads`` is then
    ``{"encoder": J_z}``, :mod:`jaxmtl.training.representation`)."""
    jac = shared_rows(task_grads, params)
    mean = jnp.mean(jac, axis=0)
    cos = jac @ mean / (jnp.linalg.norm(jac, axis=1) * jnp.linalg.norm(mean) + 1e-20)
    return jnp.mean(cos)


class Trace(Hook):
    """Every ``every`` steps: ``[step, interference, recorded weights or None]`` (the record's ``trace``)."""

    step_probe = staticmethod(interference)

    def __init__(self, every: int):
        self.every, self.trace = every, []

    def on_probe(self, step, value, opt_state):
        if step % self.every == 0:
            w = recorded_weights(opt_state)
            self.trace.append([step, float(value), None if w is None else np.asarray(w).tolist()])

    def record(self) -> dict:
        return {"trace": self.trace}


def method_configs(grid: dict[str, list]) -> list[dict]:
    """Every combination of a method's hyperparameter grid (``[{}]`` for none)."""
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


UW_FORMS = {M.cross_entropy: (2.0, 1.0), M.pixel_cross_entropy: (2.0, 1.0), M.binary_cross_entropy: (2.0, 1.0),
            M.squared_error: (2.0, 2.0), M.l1_depth_loss: (1.0, 1.0), M.l1_offset_loss: (1.0, 1.0)}
"""UW's ``(p, f)`` per task loss as paper C's ``optimizers/uw.py``: a likelihood ``eta + L e^{-2 eta}``,
a squared error ``eta + L e^{-2 eta} / 2``, an L1 loss ``eta + L e^{-eta}``."""


AT_REPRESENTATION = {"imtl": ("loss_scales", {}), "mgda_loss_plus": ("plain", {}),
                     "graddrop": ("plain", {"batch_axes": [0], "input_sign": True, "renormalize": True}),
                     "rotograd": ("plain", {})}
"""The methods paper C's code applies to the gradients of the 50-d representation (not of the encoder's
parameters), with the heads' rule and the settings of its ``optimizers/``: IMTL's heads weighted by
``exp(s_t)``; MGDA-UB's, GradDrop's and RotoGrad's given the plain sum; GradDrop's signs read through
the activation, one draw per feature over the batch, the kept sum rescaled to the plain sum's norm;
RotoGrad with its rotations of the whole representation (``lr_relation``: their learning rate over
the model's, paper C's grid {5, 1, 0.5, 0.1}; no weight decay)."""
HEADS_WEIGHTED = {"nash_mtl"}
"""Aggregators whose heads paper C's code weights by the method's weights (Nash-MTL's ``alpha``)."""


def official_settings(method: str, tasks: tuple[Task, ...], lr: float) -> tuple[dict, dict]:
    """A method's settings as paper C's code runs it (beside its grid): ``(method_kwargs,
    RunSpec fields)``. UW in the per-task form (:data:`UW_FORMS`) with ``eta`` trained by
    the model's optimiser; IMTL's loss scales by Adam at the run's learning rate; the
    placements of :data:`AT_REPRESENTATION` and :data:`HEADS_WEIGHTED`."""
    kwargs, fields = {}, {}
    if method == "uncertainty":
        unknown = [t.name for t in tasks if t.loss not in UW_FORMS]
        if unknown:
            raise ValueError(f"UW's per-task form has no rule for the losses of tasks {unknown}")
        forms = [UW_FORMS[t.loss] for t in tasks]
        kwargs = {"powers": [p for p, _ in forms], "divisors": [f for _, f in forms], "optimizer": MODEL_OPTIMIZER}
    if method == "imtl":
        kwargs = {"lr": lr}
    if method in AT_REPRESENTATION:
        heads, more = AT_REPRESENTATION[method]
        kwargs, fields = {**kwargs, **more}, {"level": "representation", "heads": heads}
    if method in HEADS_WEIGHTED:
        fields = {"heads": "weighted"}
    return kwargs, fields


def specs_at(cfg: dict, seeds, lrs, **fields) -> list[RunSpec]:
    """The specs of ``lrs`` x dropout x weight decay x ``seeds`` (``fields``: the run's task set and method)."""
    common = dict(epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=cfg["data"], optimizer=OPTIMIZER,
                  lr_schedule=cfg["schedule"], **cfg["fields"])
    grid = fields.pop("method_kwargs", {})
    tasks = cfg["bench"].tasks(cfg["loaded"], fields["tasks"])
    out = []
    for lr, d, wd, seed in itertools.product(lrs, cfg["dropouts"], cfg["weight_decays"], seeds):
        kwargs, placement = official_settings(fields["method"], tasks, lr) if fields["method"] != "stl" else ({}, {})
        out.append(RunSpec(lr=lr, dropout=d, weight_decay=wd, seed=seed, method_kwargs={**grid, **kwargs},
                           **common, **fields, **placement))
    return out


def val_seeds(cfg: dict) -> list[int]:
    return cfg["seeds"][:cfg["val_seeds"]]


def grid_specs(cfg: dict) -> list[RunSpec]:
    """Step 1: single-task baselines and every method's grid on every problem, on the validation seeds."""
    problems, seeds = cfg["task_sets"], val_seeds(cfg)
    specs = []
    for t in sorted({t for p in cfg["problems"] for t in problems[p]}):
        tasks = next(problems[p] for p in cfg["problems"] if t in problems[p])
        specs += specs_at(cfg, seeds, cfg["lrs"], tasks=tasks, method="stl", stl_task=tasks.index(t))
    screen, kept = cfg.get("screen") or (None, None)
    for problem in cfg["problems"]:
        for method, grid in cfg["methods"].items():
            if screen is not None and problem != screen and method not in kept:
                continue   # screened out on the screening problem's grid, as paper C
            for kwargs in method_configs(grid):
                specs += specs_at(cfg, seeds, cfg["lrs"], tasks=problems[problem], method=method,
                                  method_kwargs=kwargs)
    return specs


def extension_specs(cfg: dict, best: dict) -> list[RunSpec]:
    """Step 2's extension: for each choice whose learning rate is at the edge of those tried
    for its (problem, method), the next learning rate past it (x 2 or / 2) on the validation seeds."""
    specs = []
    for (problem, method), chosen in best.items():
        spec = chosen["runs"][0]["spec"]
        lr, tried = spec["lr"], chosen["lrs"]
        if len(tried) < 2 or lr not in (tried[0], tried[-1]):
            continue
        past = lr * 2 if lr == tried[-1] else lr / 2
        official, _ = official_settings(method, cfg["bench"].tasks(cfg["loaded"], tuple(spec["tasks"])), lr)
        grid = {k: v for k, v in spec.get("method_kwargs", {}).items() if k not in official}
        specs += specs_at(cfg, val_seeds(cfg), [past], tasks=tuple(spec["tasks"]), method=method, method_kwargs=grid)
    return specs


def fixed_weights(record: dict) -> list[float]:
    """Paper C's fixed weights ("FwLe0.9") from an SMTO run's per-epoch mean weights: each epoch
    normalised to sum 1, an EMA with beta 0.9 started at the first epoch, its last value
    renormalised to sum 1."""
    per_epoch = np.asarray([e["weights"] for e in record["epochs"]], np.float64)
    per_epoch = per_epoch / per_epoch.sum(axis=1, keepdims=True)
    ema = per_epoch[0]
    for w in per_epoch[1:]:
        ema = EMA_BETA * ema + (1 - EMA_BETA) * w
    return (ema / ema.sum()).tolist()


def fixed_specs(best: dict, cfg: dict) -> list[RunSpec]:
    """Step 5: for the ``fixed_from`` best SMTOs of each problem (weights not constant)."""
    specs = []
    for problem in cfg["problems"]:
        smtos = [c for (p, m), c in best.items() if p == problem and m != UNIFORM
                 and c["runs"][0]["epochs"] and "weights" in c["runs"][0]["epochs"][0]]
        smtos.sort(key=lambda c: -c["val_dm"])
        for c in smtos[:cfg["fixed_from"]]:
            first = min(c["runs"], key=lambda r: r["spec"]["seed"])
            w = fixed_weights(first)
            specs += [RunSpec.from_record(first["spec"], seed=seed, method="ew", method_kwargs={"weights": w},
                                          origin=f"{first['spec']['method']}/FwLe0.9", level="parameters",
                                          heads=None) for seed in cfg["seeds"]]
    return specs


def run_protocol(cfg: dict, run: Callable[[list[RunSpec], str], list[dict]]) -> tuple[list[dict], int]:
    """Steps 1-5 of the protocol on ``cfg`` (a preset with its data and task sets), each phase's
    runs trained (or read) by ``run(specs, phase) -> records``; returns the records and how
    many runs the protocol asked for (more than the records when some are missing)."""
    specs = grid_specs(cfg)
    records, wanted = run(specs, "grid"), len(specs)
    # the single-task references: their best configurations on the other seeds too
    stl_more = [RunSpec.from_record(runs[0]["spec"], seed=seed)
                for runs in stl_configurations(records, val_seeds(cfg)).values() for seed in cfg["seeds"][cfg["val_seeds"]:]]
    wanted += len(stl_more)
    records += run(stl_more, "single-task repeats")
    base_val, _ = stl_baselines(records, rule="config_mean", choose_seeds=val_seeds(cfg))
    best = best_configs(records, base_val, val_seeds(cfg), cfg["task_sets"])
    for _ in range(cfg["extend"]):
        more = extension_specs(cfg, best)
        if not more:
            break
        wanted += len(more)
        records += run(more, "grid extension")
        best = best_configs(records, base_val, val_seeds(cfg), cfg["task_sets"])
    for phase, more in (("repeats", [RunSpec.from_record(c["runs"][0]["spec"], seed=seed) for c in best.values()
                                     for seed in cfg["seeds"][cfg["val_seeds"]:]]),
                        ("fixed weights", fixed_specs(best, cfg))):
        wanted += len(more)
        records += run(more, phase)
    return records, wanted


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "uniform_vs_specialized", PRESETS, PRESET_NOTES, datasets=WITH_PROBLEMS,
                          default=WITH_PROBLEMS[0], why="it compares named task sets (paper C's problems)")
    parser.add_argument("--source", choices=SOURCES, default=None,
                        help="Multi-MNIST's items: fashion_mnist (default, offline) or mnist (paper C; needs --data-dir)")
    parser.add_argument("--problems", nargs="+", default=None, help="task sets to compare (default: the preset's)")
    parser.add_argument("--methods", nargs="+", type=method_names(PAPER_METHODS), default=None, metavar="METHOD",
                        help="a subset of paper C's methods (registry names, labels or LibMTL/TorchJD names), "
                             "each with its grid: " + ", ".join(PAPER_METHODS))
    parser.add_argument("--lrs", nargs="+", type=at_least(0.0, float, strict=True), default=None,
                        help="the learning-rate grid")
    parser.add_argument("--dropouts", nargs="+", type=float, default=None, help="the dropout grid")
    parser.add_argument("--weight-decays", nargs="+", type=at_least(0.0, float), default=None,
                        help="the weight-decay grid")
    parser.add_argument("--seeds", nargs="+", type=at_least(0), default=None, help="the training seeds")
    parser.add_argument("--val-seeds", type=int, default=None,
                        help="how many of the seeds the grid runs on (configurations are chosen on their mean)")
    parser.add_argument("--epochs", type=at_least(1), default=None, help="epochs per run")
    parser.add_argument("--report-only", action="store_true",
                        help="summarise the runs already in results.jsonl (labelled partial if some are missing)")
    args = parser.parse_args(argv)
    bench = DATASETS[args.dataset]
    if getattr(args, "tasks", None):
        parser.error("--tasks: this study trains its problems' task sets (--problems)")
    if args.source is not None and not bench.sources:
        parser.error(f"--source: {args.dataset} has no choice of items")
    preset = {"schedule": SCHEDULE, **PRESETS[args.preset], **bench.protocols.get("paper_c", {}).get(args.preset, {})}
    cfg = with_overrides(preset, args, ("problems", "lrs", "dropouts", "weight_decays", "seeds", "val_seeds", "epochs"))
    cfg["problems"] = cfg["problems"] or list(bench.problems)
    if args.methods:   # the preset's grid where it has the method, paper C's otherwise
        cfg["methods"] = {m: cfg["methods"].get(m, PAPER_METHODS[m]) for m in args.methods}
    cfg["methods"] = {m: g for m, g in cfg["methods"].items() if m not in cfg.get("without", ())}
    unknown = [p for p in cfg["problems"] if p not in bench.problems]
    if unknown:
        parser.error(f"--problems {' '.join(unknown)}: {args.dataset}'s are {', '.join(bench.problems)}")
    if not 1 <= cfg["val_seeds"] <= len(cfg["seeds"]):
        parser.error(f"--val-seeds {cfg['val_seeds']}: between 1 and the number of seeds ({len(cfg['seeds'])})")
    settings = dict(cfg["data"], seed=0)
    if bench.sources:
        settings["source"] = args.source or bench.sources[0]
    if bench.tasks_in_loader:   # the loader reads every task of the problems
        settings["tasks"] = list(dict.fromkeys(t for p in cfg["problems"] for t in bench.problems[p]))
    data, fields = study_data(args, settings)
    cfg.update(data=settings, fields=fields, task_sets=bench.problems, bench=bench, loaded=data)
    out = out_dir(args, "uniform_vs_specialized", WITH_PROBLEMS[0])
    store = open_store(out)
    t0 = time.time()
    train = not args.report_only
    key = lambda s: f"{s.key}-every{cfg['every']}"   # noqa: E731 (the trace's spacing shapes the record)

    def run(specs, phase):
        if train:
            return run_grid(specs, data, store, key=key, hooks=lambda s: [Trace(cfg["every"])], phase=phase)
        return [store.get(key(s)) for s in specs if key(s) in store]

    records, wanted = run_protocol(cfg, run)
    if not records:
        raise UsageError(f"--report-only: none of this command's runs are in {store.path}")
    missing = wanted - len(records)
    text, figures = report(records, cfg)
    header = (f"{'Items from ' + settings['source'] + '; ' if bench.sources else ''}"
              f"{len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test "
              f"{bench.unit}; {cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam with coupled L2 weight decay "
              f"{cfg['weight_decays']}, learning-rate schedule `{cfg['schedule']}`; grid: learning rate {cfg['lrs']} x "
              f"dropout {cfg['dropouts']}{' (extended at its edges)' if cfg['extend'] else ''}; methods and "
              f"their grids {cfg['methods']}; seeds {cfg['seeds']} (configurations chosen on the mean over "
              f"{val_seeds(cfg)}); fixed weights from the best {cfg['fixed_from']} SMTO(s) per problem; "
              f"interference every {cfg['every']} steps.\n\n")
    if missing:
        header += (f"**Partial**: {missing} of the preset's runs had not finished (the grid's missing "
                   "configurations are not candidates; missing seeds shrink the spread).\n\n")
    for name, png in figures.items():
        if name != "summary":
            atomic_write(out / f"{name}.png", png)
    write_summary(out, f"Study C: uniform loss vs specialized optimizers on {bench.title}", args.preset, header + text,
                  figures.get("summary"), t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
