"""Study of Paper B (Mueller, Dredze, Andrews, TMLR 2024): can optimization trajectories
explain multi-task transfer?

    python -m experiments.paper_b.trajectories --preset tiny|quick|paper [--out results/trajectories/quick]
    python -m experiments.paper_b.trajectories --problems CL+RR CL+CR      # Multi-MNIST's pairs only
    python -m experiments.paper_b.trajectories --dataset NAME --data-dir DIR [--tiny-model]   # Cityscapes, NYUv2, CelebA

Protocol (ours, ``../shared/STUDIES.md``), on each problem of :data:`PROBLEMS` (Multi-Fashion
with MultiLeNet; Multi-MNIST's pairs CL+RR and CL+CR, Fashion-MNIST items, with paper C's
MixedLeNet) or on another data set's own tasks (``--dataset``: Cityscapes, NYUv2, CelebA and
their models), with Adam (lr 1e-3, no weight decay): for every seed, one single-task (STL) run
per task and one multi-task (MTL) run per method, all from the same initialisation and the
same data order (:func:`experiments.runs.train_run` with the seed). Along each run
(:class:`TrajectoryProbe`, through ``train_run``'s hooks):

* every ``every`` steps, per task, with the model in evaluation mode: the training loss on
  the first ``train_eval`` training examples and the validation loss and first metric;
* at ``checkpoints`` steps spread evenly over the run (the first and last included), per
  task, on a fixed probe batch (the first ``probe`` training examples): the empirical Fisher
  trace, McCandlish et al.'s simple noise scale and the gradient coherence (from per-example
  gradients of all parameters) and, on its first ``hessian_probe`` examples, the sharpness of
  each trained task (largest Hessian eigenvalue of the task loss over all parameters,
  ``hessian_iters`` Lanczos steps, with the step where it passed the convergence check
  :func:`~experiments.paper_b.analysis.converged_iterations`); at the last checkpoint of
  the first seed's runs the same on the next ``probe`` examples too (each estimate's own
  noise, when the training set holds them);
* every ``cos_every`` steps, from the step's own task gradients on the shared parameters
  (the :func:`step_gradients` probe, inside the jitted step): the cosine of each pair of
  task gradients (conflict between tasks) and of each task's gradient with the update the
  optimizer applied (the parameter change).

Reported (:mod:`experiments.paper_b.analysis`, tables and plots in
:mod:`experiments.paper_b.report`, intervals from :mod:`experiments.paper_b.uncertainty`):
the generalization gap at comparable training loss (MTL minus STL validation loss and metric
at the step each run first reaches a training-loss level, interpolated) per task against the
level and the MTL run's progress, and where it opens (a threshold from the STL seeds'
spread); the correlation across runs and checkpoints of the gap with each quantity's
MTL-minus-STL difference; the correlation of both conflict measures with the task's
optimization deficit against its STL run and, separately, with the gap.

``quick``: 4 seeds, EW, the three problems, 1024 training examples for 12 epochs (192 steps of
64), validation on 512, 4 checkpoints, B_simple from 256 examples, sharpness on 32 (20
Lanczos steps, the convergence check's minimum);
``tiny`` is the tests'. Writes ``results.jsonl`` (one line per run with
its trajectory, resumable), ``summary.md`` and ``summary.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

from experiments.cli import at_least, method_names, run_main, study_data, study_parser, with_overrides
from experiments.datasets import DATASETS, DEFAULT, get as get_dataset
from experiments.paper_b import analysis as pb
from experiments.paper_b.report import METHOD_LABELS, plot, summarize
from experiments.report import model_label, open_store, write_summary
from experiments.runs import Hook, RunSpec, run_grid, shared_rows
from jaxmtl.analysis import (fisher_trace, gradient_coherence, gradient_noise_scale, hessian_top_eigenvalue,
                             pairwise_similarity, per_sample_jacobian, update_cosines)
from jaxmtl.training import evaluate_tasks, make_task_eval_step
from jaxmtl.training.steps import split_variables, task_losses

PAIRS = ("CL+RR", "CL+CR")
PROBLEMS = {DEFAULT: (DEFAULT, None),
            **{p: next((n, b.problems[p]) for n, b in DATASETS.items() if p in b.problems) for p in PAIRS}}
"""The study's problems: ``name: (data set, tasks)`` (``None``: the data set's own): Multi-Fashion
and Multi-MNIST's pairs CL+RR and CL+CR (paper C's, with Fashion-MNIST items, offline here)."""
STUDY_DATASETS = tuple(n for n, b in DATASETS.items() if b.input_key == "image")
"""The data sets of image batches (not QM9's padded molecule graphs)."""
PROBE_FIELDS = ("every", "checkpoints", "probe", "hessian_probe", "train_eval", "hessian_iters", "cos_every")
"""Preset fields that shape a trajectory (part of a run's key)."""
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=2, batch_size=32, seeds=[0],
                 methods=["ew", "mgda"], problems=[DEFAULT], every=2, checkpoints=3, probe=16,
                 hessian_probe=8, train_eval=64, hessian_iters=3, cos_every=1, levels=4),
    "quick": dict(data=dict(n_train=1024, n_val=512, n_test=64), epochs=12, batch_size=64, seeds=[0, 1, 2, 3],
                  methods=["ew"], problems=list(PROBLEMS), every=8, checkpoints=4, probe=256,
                  hessian_probe=32, train_eval=512, hessian_iters=20, cos_every=1, levels=8),
    "paper": dict(data=dict(), epochs=10, batch_size=256, seeds=[0, 1, 2, 3, 4], methods=list(METHOD_LABELS),
                  problems=list(PROBLEMS), every=50, checkpoints=20, probe=1024, hessian_probe=256,
                  train_eval=4096, hessian_iters=40, cos_every=1, levels=12),
}
PRESET_NOTES = {
    "tiny": "smoke run: EW and MGDA + 2 STL runs on Multi-Fashion, 128 canvases, 2 epochs; about a minute on CPU",
    "quick": "EW + the STL runs on Multi-Fashion and Multi-MNIST's CL+RR and CL+CR, 1024 canvases, 12 epochs, "
             "4 seeds (36 runs); CPU 19 min (measured, shared), GPU ~5 min (estimated)",
    "paper": "EW, MGDA, PCGrad, UPGrad, Nash-MTL on the three problems, full data, 10 epochs, 5 seeds, larger "
             "probes; CPU ~days, GPU ~5 h (estimated)",
}
OPTIMIZER, LR = "adam", 1e-3


def step_gradients(task_grads, params) -> tuple[jax.Array, jax.Array]:
    """The study's step probe (inside the jitted step): the task gradients on the shared
    parameters ``(T, P)`` and the cosine of each pair ``i < j`` of them (row-major order)."""
    rows = shared_rows(task_grads, params)
    return rows, pairwise_similarity(rows)["cosine"]


_update_cosines = jax.jit(update_cosines)
_PROBES: dict = {}


def probe_functions(spec: RunSpec, data, hessian_iters: int):
    """Jitted ``(quantities, sharpness, eval_step, tasks)`` of the model of ``spec`` on ``data``,
    compiled once per configuration (STL and MTL runs of a problem share them); both
    quantities take the model in evaluation mode.

    ``quantities(variables, batch)``: per task ``(T,)``, from per-example gradients of all
    parameters, the empirical Fisher trace, the simple noise scale and the gradient coherence.
    ``sharpness(variables, batch, key, task)``: the task's sharpness (Lanczos, ``hessian_iters``
    steps, unrolled, all parameters) and its history ``(hessian_iters,)``.
    """
    key = (id(data), spec.dataset, spec.arch, spec.tiny, spec.dropout, spec.tasks, hessian_iters)
    entry = _PROBES.get(key)
    if entry is not None and entry[0] is data:
        return entry[1]
    bench = get_dataset(spec.dataset)
    model = bench.model(data, spec.arch or bench.archs[0], spec.tiny, spec.dropout, spec.tasks)
    tasks = bench.tasks(data, spec.tasks)

    def loss_fn(params, batch, state):
        return task_losses(model.apply({"params": params, **state}, batch[bench.input_key], train=False),
                           batch, tasks)

    per_example = per_sample_jacobian(loss_fn)

    @jax.jit
    def quantities(variables, batch):
        params, state = split_variables(variables)
        grads = per_example(params, batch, state)[1]
        return {"fisher_trace": fisher_trace(grads, task_axis=True),
                "noise_scale": gradient_noise_scale(grads, task_axis=True).simple,
                "coherence": gradient_coherence(grads, task_axis=True)}

    @jax.jit
    def sharpness(variables, batch, key, task):
        params, state = split_variables(variables)
        return hessian_top_eigenvalue(lambda p: loss_fn(p, batch, state)[task], params, key=key,
                                      num_iters=hessian_iters, return_history=True, unroll=True)

    fns = (quantities, sharpness, make_task_eval_step(model.apply, tasks, input_key=bench.input_key), tasks)
    _PROBES[key] = (data, fns)
    return fns


def checkpoint_steps(total: int, every: int, count: int) -> list[int]:
    """``count`` analysis steps spread over ``[0, total]``, on the logging grid, the last being ``total``."""
    grid = {min(int(round(x / every)) * every, total) for x in np.linspace(0, total, count)[:-1]}
    return sorted(grid | {0, total})


class TrajectoryProbe(Hook):
    """A :class:`~experiments.runs.Hook` of :func:`~experiments.runs.train_run` that logs a
    run's trajectory (see the module docstring) as the record's ``trajectory``."""

    step_probe = staticmethod(step_gradients)
    variables = True

    def __init__(self, spec: RunSpec, data, cfg: dict):
        bench = get_dataset(spec.dataset)
        self.quantities, self.sharpness, self.eval_step, self.tasks = probe_functions(spec, data,
                                                                                      cfg["hessian_iters"])
        self.trained = range(len(self.tasks)) if spec.stl_task is None else [spec.stl_task]
        self.input_key = bench.input_key
        size = min(bench.eval_batch_size or spec.batch_size, cfg["train_eval"])
        self.train_batches = lambda: itertools.islice(bench.batches(data.train, size, drop_last=False),
                                                      math.ceil(cfg["train_eval"] / size))
        self.val_batches = lambda: bench.batches(data.val, bench.eval_batch_size or spec.batch_size,
                                                 drop_last=False)
        probes = bench.batches(data.train, min(cfg["probe"], len(data.train)))
        self.probe, self.second = next(probes), next(probes, None)
        if spec.seed != cfg["seeds"][0]:  # the estimates' own noise: the first seed's runs only
            self.second = None
        self.hessian_probe = cfg["hessian_probe"]
        self.every, self.cos_every = cfg["every"], cfg["cos_every"]
        self.steps_per_epoch = len(data.train) // spec.batch_size
        self.total = self.steps_per_epoch * spec.epochs
        self.checkpoints = set(checkpoint_steps(self.total, self.every, cfg["checkpoints"]))
        self.key = jax.random.PRNGKey(spec.seed)
        self.log = {"steps": [], "train_loss": [], "val_loss": [], "val_metric": [],
                    "metrics": [t.metrics[0].name for t in self.tasks]}
        self.ck = {"steps": [], "lanczos_iters": [], **{q: [] for q in pb.QUANTITIES}, "second": {}}
        num = len(self.tasks) if spec.stl_task is None else 1
        self.conflict = {"steps": [], "update": [], "inter": [],
                         "pairs": np.stack(np.triu_indices(num, k=1), axis=1).tolist()}
        self.before, self.pending, self.last = None, None, None

    def _values(self, variables, batch, step) -> tuple[dict, list]:
        """The quantities on ``batch`` (the sharpness of the trained tasks only, None for the
        others) and the Lanczos steps each trained task's sharpness needed."""
        values = {k: np.asarray(v).tolist() for k, v in self.quantities(variables, batch).items()}
        hessian_batch = jax.tree.map(lambda x: x[:self.hessian_probe], batch)
        key = jax.random.fold_in(self.key, step)
        values["sharpness"], iters = [None] * len(self.tasks), []
        for t in self.trained:
            value, history = self.sharpness(variables, hessian_batch, jax.random.fold_in(key, t), t)
            values["sharpness"][t] = float(value)
            iters.append(pb.converged_iterations(np.asarray(history)))
        return values, iters

    def _observe(self, step: int, variables) -> None:
        if step == self.last:
            return
        self.last = step
        params = variables["params"]
        if self.pending is not None:
            k, rows, inter, before = self.pending
            delta = np.asarray(shared_rows(params, params)) - before
            self.conflict["steps"].append(k)
            self.conflict["update"].append(np.asarray(_update_cosines([rows], [delta])).tolist())
            self.conflict["inter"].append(np.asarray(inter).tolist())
            self.pending = None
        if step % self.every == 0 or step == self.total:
            train, val = (evaluate_tasks(self.eval_step, variables, batches(), self.tasks, self.input_key)
                          for batches in (self.train_batches, self.val_batches))
            self.log["steps"].append(step)
            self.log["train_loss"].append([train[t.name]["loss"] for t in self.tasks])
            self.log["val_loss"].append([val[t.name]["loss"] for t in self.tasks])
            self.log["val_metric"].append([val[t.name][t.metrics[0].name] for t in self.tasks])
        if step in self.checkpoints:
            values, iters = self._values(variables, self.probe, step)
            self.ck["steps"].append(step)
            for q in pb.QUANTITIES:
                self.ck[q].append(values[q])
            self.ck["lanczos_iters"].append(iters)
            if step == self.total and self.second is not None:
                self.ck["second"] = self._values(variables, self.second, step + 1)[0]

    def on_step(self, step, variables, batch, rng) -> None:
        self._observe(step, variables)
        self.before = (np.asarray(shared_rows(variables["params"], variables["params"]))
                       if step % self.cos_every == 0 else None)

    def on_probe(self, step, value, opt_state) -> None:
        if self.before is not None:
            self.pending = (step, value[0], value[1], self.before)

    def on_epoch(self, record, variables) -> None:
        self._observe(self.steps_per_epoch * record["epoch"], variables)

    def record(self) -> dict:
        return {"trajectory": {**self.log, "checkpoints": self.ck, "conflict": self.conflict}}


def build_specs(cfg: dict, fields: dict, num_tasks: int) -> list[RunSpec]:
    """Per seed: one STL run per task and one MTL run per method of a problem (``fields``: the
    :class:`RunSpec` fields naming its data set, model and tasks; ``data``: its loader settings)."""
    common = dict(optimizer=OPTIMIZER, lr=LR, epochs=cfg["epochs"], batch_size=cfg["batch_size"], **fields)
    specs = []
    for seed in cfg["seeds"]:
        specs += [RunSpec(method="stl", stl_task=t, seed=seed, **common) for t in range(num_tasks)]
        specs += [RunSpec(method=m, seed=seed, **common) for m in cfg["methods"]]
    return specs


def record_key(spec: RunSpec, cfg: dict) -> str:
    """The run's key in ``results.jsonl``: the spec's, plus a hash of the :data:`PROBE_FIELDS`
    (a run logged with other probe settings is not reused)."""
    blob = json.dumps({f: cfg[f] for f in PROBE_FIELDS}, sort_keys=True)
    return f"{spec.key}-{hashlib.sha1(blob.encode()).hexdigest()[:6]}"


def run_all(specs: list[RunSpec], data, store, cfg: dict, phase: str | None = None) -> list[dict]:
    """Trains (with a :class:`TrajectoryProbe`) the runs ``store`` lacks; returns all records."""
    return run_grid(specs, data, store, key=lambda s: record_key(s, cfg), phase=phase,
                    hooks=lambda s: [TrajectoryProbe(s, data, cfg)])


def problems_of(args: argparse.Namespace, cfg: dict, parser: argparse.ArgumentParser) -> dict:
    """``{name: (data set, tasks)}``: the preset's (or ``--problems``) on the default data set,
    another ``--dataset`` alone with its own tasks (or ``--tasks``)."""
    if args.dataset != DEFAULT:
        if args.problems:
            parser.error(f"--problems: the problems are Multi-Fashion's and Multi-MNIST's; --dataset "
                         f"{args.dataset} runs its own tasks (or --tasks)")
        return {DATASETS[args.dataset].title: (args.dataset, None)}
    if args.tasks:
        parser.error(f"--tasks: {DEFAULT} has a fixed task set (Multi-MNIST's pairs are --problems)")
    return {p: PROBLEMS[p] for p in cfg["problems"]}


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "trajectories", PRESETS, PRESET_NOTES, datasets=STUDY_DATASETS,
                          why="its per-example probes need a batch of examples (QM9's molecule graphs "
                              "are padded together)")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=None,
                        help="Multi-Fashion and Multi-MNIST's pairs (default: the preset's)")
    parser.add_argument("--methods", nargs="+", type=method_names(METHOD_LABELS), default=None, metavar="METHOD",
                        help="the MTL methods (registry names, labels or LibMTL/TorchJD names)")
    parser.add_argument("--seeds", nargs="+", type=at_least(0), default=None, help="the training seeds")
    parser.add_argument("--epochs", type=at_least(1), default=None, help="epochs per run")
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "seeds", "epochs", "problems"))
    problems = problems_of(args, cfg, parser)
    out = Path(args.out or f"results/trajectories/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    sections, figures, loaded = [], [], {}
    for name, (dataset, tasks) in problems.items():
        bench = DATASETS[dataset]
        settings = dict(cfg["data"], **({"source": bench.sources[0]} if bench.sources else {}))
        if dataset not in loaded:   # a mistake in the data set's arguments: run_main's one line
            loaded[dataset] = study_data(argparse.Namespace(**{**vars(args), "dataset": dataset}), settings)
        data, fields = loaded[dataset]
        fields = dict(fields, data=dict(settings, seed=0), **({"tasks": tasks} if tasks else {}))
        num_tasks = len(bench.tasks(data, fields.get("tasks")))
        records = run_all(build_specs(cfg, fields, num_tasks), data, store, cfg, phase=name)
        text, plot_data = summarize(records, cfg)
        sections.append(
            f"## {name}\n\n{bench.title}{' ' + '+'.join(tasks) if tasks else ''}: "
            f"{model_label(bench, fields.get('arch'), fields['tiny'])}, {OPTIMIZER} lr {LR:g}, {cfg['epochs']} "
            f"epochs, batch {cfg['batch_size']}, seeds {cfg['seeds']}, {len(data.train)}/{len(data.val)} train/val "
            f"{bench.unit}; logged every {cfg['every']} steps (training loss on the first "
            f"{min(cfg['train_eval'], len(data.train))} training {bench.unit}), {cfg['checkpoints']} analysis "
            f"checkpoints: Fisher trace, noise scale and coherence from the per-example gradients of "
            f"{cfg['probe']} training {bench.unit}, sharpness on the first {cfg['hessian_probe']} of them "
            f"(Lanczos, {cfg['hessian_iters']} steps, convergence checked from step {pb.MIN_LANCZOS}); "
            f"conflict every {cfg['cos_every']} step(s).\n\n" + text)
        if plot_data:
            figures.append((name, plot_data))
    header = (f"Problems: {', '.join(problems)}. Every interval is a 95% two-level bootstrap over seeds and "
              f"checkpoints (or logged intervals); n is the number of points behind an r.\n\n")
    write_summary(out, "Paper B: optimization trajectories and multi-task transfer", args.preset,
                  header + "\n\n".join(sections), plot(figures, cfg["methods"]) if figures else None, t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
