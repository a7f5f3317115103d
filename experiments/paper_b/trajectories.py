"""Study of Paper B (Mueller, Dredze, Andrews, TMLR 2024): can optimization trajectories
explain multi-task transfer?

    python -m experiments.paper_b.trajectories --preset tiny|quick|paper [--out results/trajectories/quick]

Protocol (ours, ``../shared/STUDIES.md``), on Multi-Fashion with MultiLeNet and
Adam (lr 1e-3, no weight decay): for every seed, one single-task (STL) run per
task and one multi-task (MTL) run per method (EW, MGDA, PCGrad, UPGrad,
Nash-MTL by default), all from the same initialisation and the same data order
(:func:`experiments.runs.train_run` with the seed). Along each run
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

Reported (:mod:`experiments.paper_b.analysis`, tables and plots in
:mod:`experiments.paper_b.report`): the generalization gap at
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

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import run_main, study_data, study_parser, with_overrides
from experiments.datasets import DEFAULT
from experiments.paper_b import analysis as pb
from experiments.paper_b.report import METHOD_LABELS, plot, summarize
from experiments.report import open_store, write_summary
from experiments.runs import Hook, RunSpec, run_grid
from jaxmtl import value_and_jacobian
from jaxmtl.analysis import (fisher_trace, gradient_coherence, gradient_noise_scale,
                             hessian_top_eigenvalue, per_sample_jacobian, update_cosines)
from jaxmtl.data import Split, batches
from jaxmtl.models import MultiLeNet, shared_mask
from jaxmtl.training import classification_losses, evaluate, make_eval_step

PROBE_FIELDS = ("every", "checkpoints", "probe", "train_eval", "hessian_iters", "cos_every")
"""Preset fields that shape a trajectory (part of a run's key)."""
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=2, batch_size=32, seeds=[0],
                 methods=["ew", "mgda"], every=2, checkpoints=3, probe=8, train_eval=64, hessian_iters=3,
                 cos_every=1, levels=4),
    "quick": dict(data=dict(n_train=1024, n_val=1024, n_test=512), epochs=12, batch_size=64, seeds=[0, 1],
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
    grid = {min(int(round(x / every)) * every, total) for x in np.linspace(0, total, count)[:-1]}
    return sorted(grid | {0, total})


class TrajectoryProbe(Hook):
    """A :class:`~experiments.runs.Hook` of :func:`~experiments.runs.train_run` that logs a
    run's trajectory (see the module docstring) as the record's ``trajectory``."""

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

    def record(self) -> dict:
        return {"trajectory": {**self.log, "checkpoints": self.ck, "cosines": self.cos}}


def build_specs(cfg: dict) -> list[RunSpec]:
    common = dict(optimizer=OPTIMIZER, lr=LR, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                  data=dict(cfg["data"], seed=0))
    specs = []
    for seed in cfg["seeds"]:
        specs += [RunSpec(method="stl", stl_task=t, seed=seed, **common) for t in (0, 1)]
        specs += [RunSpec(method=m, seed=seed, **common) for m in cfg["methods"]]
    return specs


def record_key(spec: RunSpec, cfg: dict) -> str:
    """The run's key in ``results.jsonl``: the spec's, plus a hash of the :data:`PROBE_FIELDS`
    (a run logged with other probe settings is not reused)."""
    blob = json.dumps({f: cfg[f] for f in PROBE_FIELDS}, sort_keys=True)
    return f"{spec.key}-{hashlib.sha1(blob.encode()).hexdigest()[:6]}"


def run_all(specs: list[RunSpec], data, store, cfg: dict) -> list[dict]:
    """Trains (with a :class:`TrajectoryProbe`) the runs ``store`` lacks; returns all records."""
    return run_grid(specs, data, store, key=lambda s: record_key(s, cfg),
                    hooks=lambda s: [TrajectoryProbe(data, cfg, len(data.train) // s.batch_size, s.epochs, s.seed)])


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "trajectories", PRESETS, datasets=(DEFAULT,),
                          why="its probes (sharpness, cosines, evaluation) are built on MultiLeNet and the "
                              "classification losses of Multi-Fashion")
    parser.add_argument("--methods", nargs="+", choices=list(METHOD_LABELS), default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "seeds", "epochs"))
    out = Path(args.out or f"results/trajectories/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data, _ = study_data(args, dict(cfg["data"]))
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
    sys.exit(run_main(main))
