"""Study C (paper C, Gama & Grassi 2025): uniform loss vs specialized optimizers, under fair tuning.

    python -m experiments.paper_c.uniform_vs_specialized --preset quick [--out results/uniform_vs_specialized/quick]

Paper C's claim: the mean of the task losses ("Unit. Scal.") tuned as carefully as
the specialized multi-task optimizers (SMTOs) matches them on easy problems;
SMTOs help once problems get harder; and fixed weights taken from an SMTO's run do
as well as the SMTO. Protocol (Multi-MNIST, :mod:`jaxmtl.data.multi_mnist`, built
from Fashion-MNIST offline or from MNIST with ``--source mnist --data-dir DIR``):

1. single-task baselines for every task, on the grid: the network of the first
   problem with the task, trained with the weight 1 on it and 0 on the others
   (the encoder sees that task's gradient alone; the other heads are unused);
2. every method on every problem (the pairs CL+RR, CL+CR, RL+RR and, as the
   harder-problem axis, *ours*: the three tasks CL+CR+RL) over the grid learning
   rate x dropout x weight decay x the method's own grid, with Adam, coupled L2
   weight decay and a learning rate decayed by 0.95 per epoch (the one training
   stack, :func:`experiments.runs.train_run`, with the learning-rate schedule
   ``exp_decay``); each run's epoch is its best on validation
   by paper C's delta-m (task convention, higher is better) against the
   single-task baselines, and each method's configuration is the best one
   (first seed);
3. repeated runs of each method's best configuration (the other seeds);
4. fixed weights from the best SMTOs' runs (``fixed_from`` of them per problem, by
   validation delta-m): the mean over epochs of the per-epoch mean weights, their
   EMA (beta 0.9) and the last epoch's, each retrained with
   ``jaxmtl.linear(weights=...)`` at the SMTO's configuration on every seed.

Every ``every`` steps a run records the method's weights and the interference
statistic (mean over tasks of ``cos(g_t, mean_s g_s)`` on the shared encoder), a
:class:`Trace` hook computed inside the jitted step from its task gradients.
The paper C reconstruction loss and metric are the per-pixel MSE.

Presets: ``paper`` is paper C's Multi-MNIST grid (lr in {0.01, 0.0075, 0.005,
0.0025, 0.001, 0.00075, 0.0005} x dropout in {0, 0.1, ..., 0.5}, 100 epochs,
batch 256, 5 + 5 seeds; CAGrad c, FAMO gamma and CDTT alpha grids; the learning
rate of UW's and IMTL's loss scales) on its methods that the generic step trains:
Auto-Lambda needs held-out gradients (``jaxmtl.make_auto_lambda_step``) and
RotoGrad's rotations a rotated model, so RotoGrad is its scaling part here and
Auto-Lambda is not run. ``quick`` subsamples the data, trains few epochs on a 2 x 2
grid and six methods (stated in the summary); ``tiny`` is the test's. Weight decay
is fixed to 1e-5 (``--weight-decays`` makes it a grid axis).

Writes ``results.jsonl`` (one line per run, resumable), ``summary.md``,
``summary.png`` (delta-m with its spread), ``weights.png`` and
``interference.png`` into ``--out``.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import study_parser, with_overrides
from experiments.datasets import DATASETS, load_dataset
from experiments.paper_c.report import UNIFORM, problem_of, report, val_score
from experiments.report import open_store, write_summary
from experiments.runs import Hook, RunSpec, run_grid
from experiments.selection import stl_baselines
from jaxmtl.data.multi_mnist import SOURCES
from jaxmtl.masking import resolve_mask
from jaxmtl.method import recorded_weights
from jaxmtl.models import shared_mask
from jaxmtl.training import atomic_write

WITH_PROBLEMS = tuple(name for name, bench in DATASETS.items() if bench.problems)
"""The data sets that name task sets to compare (paper C's Multi-MNIST)."""
OPTIMIZER, SCHEDULE = "adam", "exp_decay"
PAPER_LRS = [0.01, 0.0075, 0.005, 0.0025, 0.001, 0.00075, 0.0005]
PAPER_DROPOUTS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
PAPER_METHODS = {
    "mean": {}, "uncertainty": {"lr": [1e-2, 1e-3, 1e-4]}, "mgda_loss_plus": {}, "pcgrad": {}, "graddrop": {},
    "edm": {}, "imtl": {"lr": [1e-2, 1e-3, 1e-4]}, "cagrad": {"c": [0.2, 0.5, 0.8]}, "rotograd": {},
    "nash_mtl": {}, "scale_invariant": {}, "rlw": {}, "rlw_dirichlet": {}, "cdtt": {"alpha": [0.2, 0.4, 0.6, 0.8, 1.0]},
    "famo": {"gamma": [1e-2, 1e-3, 1e-4]},
}
"""Paper C's Multi-MNIST methods (registry names) and their grids."""
QUICK_METHODS = {"mean": {}, "uncertainty": {}, "imtl": {}, "cagrad": {"c": [0.5]}, "nash_mtl": {},
                 "famo": {"gamma": [1e-3]}}
FIXED_RULES = ("mean", "ema", "last")
EMA_BETA = 0.9
PRESETS = {
    "tiny": dict(data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=16, seeds=[0, 1],
                 problems=["CL+RR"], methods={"mean": {}, "imtl": {}}, lrs=[1e-3], dropouts=[0.0],
                 weight_decays=[1e-5], fixed_from=1, every=2),
    "quick": dict(data=dict(n_train=1536, n_val=1000, n_test=2000), epochs=4, batch_size=64, seeds=[0, 1],
                  problems=None, methods=QUICK_METHODS, lrs=[0.005, 0.001], dropouts=[0.0, 0.2],
                  weight_decays=[1e-5], fixed_from=1, every=8),
    "paper": dict(data=dict(), epochs=100, batch_size=256, seeds=list(range(5)) + list(range(5, 10)),
                  problems=None, methods=PAPER_METHODS, lrs=PAPER_LRS, dropouts=PAPER_DROPOUTS,
                  weight_decays=[1e-5], fixed_from=3, every=100),
}
"""``problems=None``: every task set of the data set."""


def interference(task_grads, params) -> jax.Array:
    """Paper C's interference statistic: ``mean_t cos(g_t, mean_s g_s)`` over the shared
    parameters (the stacked leaves of ``task_grads``, :func:`jaxmtl.value_and_jacobian`)."""
    mask = jax.tree.leaves(resolve_mask(shared_mask, params))
    rows = [g.reshape(g.shape[0], -1) for m, g in zip(mask, jax.tree.leaves(task_grads)) if m]
    jac = jnp.concatenate(rows, axis=1)
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


def base_specs(cfg: dict, **fields) -> list[RunSpec]:
    """The specs of the learning rate x dropout x weight decay grid at ``cfg``'s first seed."""
    common = dict(seed=cfg["seeds"][0], epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=cfg["data"],
                  optimizer=OPTIMIZER, lr_schedule=SCHEDULE, dataset=cfg["dataset"])
    return [RunSpec(lr=lr, dropout=d, weight_decay=wd, **common, **fields)
            for lr, d, wd in itertools.product(cfg["lrs"], cfg["dropouts"], cfg["weight_decays"])]


def grid_specs(cfg: dict) -> list[RunSpec]:
    """Steps 1 and 2: single-task baselines and every method's grid on every problem."""
    problems = cfg["task_sets"]
    specs = []
    for t in sorted({t for p in cfg["problems"] for t in problems[p]}):
        tasks = next(problems[p] for p in cfg["problems"] if t in problems[p])
        specs += base_specs(cfg, tasks=tasks, method="stl", stl_task=tasks.index(t))
    for problem in cfg["problems"]:
        for method, grid in cfg["methods"].items():
            for kwargs in method_configs(grid):
                specs += base_specs(cfg, tasks=problems[problem], method=method, method_kwargs=kwargs)
    return specs


def best_configs(records: list[dict], base_val: dict, seed: int) -> dict[tuple[str, str], dict]:
    """Per (problem, method): the first seed's run with the best validation delta-m."""
    best: dict[tuple[str, str], dict] = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is not None or "weights" in s.get("method_kwargs", {}) or s["seed"] != seed:
            continue
        k = (problem_of(s), s["method"])
        if k not in best or val_score(r, base_val) > val_score(best[k], base_val):
            best[k] = r
    return best


def fixed_weights(record: dict) -> dict[str, list[float]]:
    """Paper C's fixed weights from an SMTO run's per-epoch mean weights: their mean,
    their EMA (beta 0.9, started at the first epoch) and the last epoch's."""
    per_epoch = np.asarray([e["weights"] for e in record["epochs"]])
    ema = per_epoch[0]
    for w in per_epoch[1:]:
        ema = EMA_BETA * ema + (1 - EMA_BETA) * w
    return {"mean": per_epoch.mean(0).tolist(), "ema": ema.tolist(), "last": per_epoch[-1].tolist()}


def fixed_specs(best: dict, base_val: dict, cfg: dict) -> list[RunSpec]:
    """Step 4: for the ``fixed_from`` best SMTOs of each problem (non-constant weights)."""
    specs = []
    for problem in cfg["problems"]:
        smtos = [r for (p, m), r in best.items() if p == problem and m != UNIFORM and r["epochs"]
                 and "weights" in r["epochs"][0]]
        smtos.sort(key=lambda r: -val_score(r, base_val))
        for r in smtos[:cfg["fixed_from"]]:
            for rule, w in fixed_weights(r).items():
                specs += [RunSpec.from_record(r["spec"], seed=seed, method="ew", method_kwargs={"weights": w},
                                              origin=f"{r['spec']['method']}/{rule}") for seed in cfg["seeds"]]
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "uniform_vs_specialized", PRESETS, datasets=WITH_PROBLEMS,
                          default=WITH_PROBLEMS[0], why="it compares named task sets (paper C's problems)")
    parser.add_argument("--source", choices=SOURCES, default="fashion_mnist",
                        help="items of the canvases: Fashion-MNIST (offline) or MNIST (paper C; needs --data-dir)")
    parser.add_argument("--problems", nargs="+", default=None, help="task sets to compare (default: all)")
    parser.add_argument("--lrs", nargs="+", type=float, default=None)
    parser.add_argument("--dropouts", nargs="+", type=float, default=None)
    parser.add_argument("--weight-decays", nargs="+", type=float, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--report-only", action="store_true",
                        help="summarise the runs already in results.jsonl (labelled partial if some are missing)")
    args = parser.parse_args(argv)
    bench = DATASETS[args.dataset]
    cfg = with_overrides(PRESETS[args.preset], args,
                         ("problems", "lrs", "dropouts", "weight_decays", "seeds", "epochs"))
    cfg["problems"] = cfg["problems"] or list(bench.problems)
    unknown = [p for p in cfg["problems"] if p not in bench.problems]
    if unknown:
        parser.error(f"--problems {' '.join(unknown)}: {args.dataset}'s are {', '.join(bench.problems)}")
    cfg.update(data=dict(cfg["data"], source=args.source, seed=0), dataset=args.dataset, task_sets=bench.problems)
    out = Path(args.out or f"results/uniform_vs_specialized/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data = load_dataset(args.dataset, args.data_dir, **cfg["data"])
    train, wanted = not args.report_only, 0
    key = lambda s: f"{s.key}-every{cfg['every']}"   # noqa: E731 (the trace's spacing shapes the record)

    def run(specs, phase):
        if train:
            return run_grid(specs, data, store, key=key, hooks=lambda s: [Trace(cfg["every"])], phase=phase)
        return [store.get(key(s)) for s in specs if key(s) in store]

    specs = grid_specs(cfg)
    records = run(specs, "grid")
    base_val, _ = stl_baselines(records, per_seed=False)
    best = best_configs(records, base_val, cfg["seeds"][0])
    for phase, more in (("repeats", [RunSpec.from_record(r["spec"], seed=seed) for r in best.values()
                                     for seed in cfg["seeds"][1:]]),
                        ("fixed weights", fixed_specs(best, base_val, cfg))):
        wanted += len(more)
        records += run(more, phase)
    missing = len(specs) + wanted - len(records)
    text, figures = report(records, best, cfg)
    header = (f"# Study C: uniform loss vs specialized optimizers on {bench.title} (preset `{args.preset}`)\n\n"
              f"Items from {args.source}; {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test "
              f"{bench.unit}; {cfg['epochs']} epochs, batch {cfg['batch_size']}, Adam with coupled L2 weight decay "
              f"{cfg['weight_decays']}, learning rate x 0.95 per epoch; grid: learning rate {cfg['lrs']} x "
              f"dropout {cfg['dropouts']}; methods and their grids {cfg['methods']}; seeds {cfg['seeds']} "
              f"(the grid on seed {cfg['seeds'][0]}); fixed weights from the best {cfg['fixed_from']} SMTO(s) "
              f"per problem; interference every {cfg['every']} steps.\n\n")
    if missing:
        header += (f"**Partial**: {missing} of the preset's runs had not finished (the grid's missing "
                   "configurations are not candidates; missing seeds shrink the spread).\n\n")
    for name, png in figures.items():
        if name != "summary":
            atomic_write(out / f"{name}.png", png)
    write_summary(out, header + text, figures.get("summary"), t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
