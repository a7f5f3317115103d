"""Shared pieces of the experiment modules: registries, one training run, reports."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm import tqdm

import jaxmtl
from experiments.optimizers import base_optimizer, lr_factor, make_optimizer
from jaxmtl import registry
from experiments.datasets import DATASETS, get as get_dataset, load_dataset
from jaxmtl.data import prefetch
from jaxmtl.data.tasks import higher_is_better
from jaxmtl.method import recorded_weights
from jaxmtl.models import shared_mask, task_of
from jaxmtl.sharding import data_mesh, data_parallel, replicate, shard_batch
from jaxmtl.training.checkpoint import RunCheckpoint, generator_state, restore_generator
from jaxmtl.training import (ResultStore, atomic_write, delta_m, evaluate_tasks, make_task_eval_step,
                             make_task_train_step)
from jaxmtl.training.steps import split_variables

METHODS = [m.name for m in registry.entries() if not m.extra_batches and not m.extra_args]
"""The registry's methods a study can train by name with the generic train step (all but SDMGrad
and MoDo, which need two extra batches per step, and Auto-Lambda, which needs held-out gradients:
``jaxmtl.make_auto_lambda_step``)."""


LIBMTL_SETTINGS = {
    "uw_libmtl": ("uncertainty", lambda t: {"init": -0.5}),
    "cagrad_libmtl": ("cagrad", lambda t: {"c": 0.5}),
    "aligned_mtl_libmtl": ("aligned_mtl", lambda t: {"pref": jnp.ones(t)}),
}
"""Experiment settings of registry methods as LibMTL (Paper A's code base) runs them:
``name: (registry name, keyword arguments for T tasks)``. ``uw_libmtl``: UW's
log-variances start at -0.5 and are trained by the model's own optimiser
(``build_method``'s ``optimizer``; LibMTL also applies its weight decay to them,
which is left out here); ``cagrad_libmtl``: c = 0.5; ``aligned_mtl_libmtl``: the
aligned rows summed (preference 1 per task, not 1/T)."""
TRAINED_BY_MODEL_OPTIMIZER = ("uw_libmtl",)


def registry_name(name: str) -> str:
    """The registry method behind a method name or a :data:`LIBMTL_SETTINGS` name."""
    return LIBMTL_SETTINGS[name][0] if name in LIBMTL_SETTINGS else name


def build_method(name: str, num_tasks: int, seed: int = 0, *,
                 optimizer: optax.GradientTransformation | None = None) -> optax.GradientTransformation:
    """The registry's method ``name`` (or a :data:`LIBMTL_SETTINGS` setting) for
    ``num_tasks`` tasks; random methods are seeded with the run's ``seed`` (so seeds
    of a study draw different weights and orders). ``optimizer``: the model's
    optimiser, required by the settings in :data:`TRAINED_BY_MODEL_OPTIMIZER`."""
    info = registry.get(registry_name(name))
    kwargs = LIBMTL_SETTINGS[name][1](num_tasks) if name in LIBMTL_SETTINGS else {}
    if name in TRAINED_BY_MODEL_OPTIMIZER:
        if optimizer is None:
            raise ValueError(f"{name} trains its parameters with the model's optimizer: pass optimizer=")
        kwargs["optimizer"] = optimizer
    if info.random:
        kwargs["seed"] = seed
    return info.build(num_tasks, **kwargs)


def weights_heads(name: str) -> bool:
    """Loss weightings minimise ``sum_t w_t L_t``: their heads are weighted too (``task_of``);
    gradient aggregators give the heads their plain gradient, as LibMTL does."""
    return registry.get(registry_name(name)).kind == "loss"


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``method='stl'`` trains task ``stl_task`` alone. ``dataset``
    names an entry of :data:`experiments.datasets.DATASETS`, ``arch`` one of its models
    (``None``: its first), ``tiny`` the few-channel version of that model."""

    method: str
    optimizer: str
    lr: float
    seed: int
    epochs: int
    batch_size: int
    data: dict = field(default_factory=dict)
    stl_task: int | None = None
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    dataset: str = "multi_fashion"
    arch: str | None = None
    tiny: bool = False

    def record_fields(self) -> dict:
        """The spec as a record holds it: the data-set fields only when they differ from
        their defaults (Multi-Fashion records and keys predate them)."""
        fields = asdict(self)
        for name, default in NEW_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        return fields

    @property
    def key(self) -> str:
        fields = self.record_fields()
        if not self.weight_decay:  # keys of runs without weight decay predate the field
            del fields["weight_decay"]
        if self.lr_schedule == "constant":  # and so do those of constant learning rates
            del fields["lr_schedule"]
        blob = json.dumps(fields, sort_keys=True)
        return f"{self.label}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    @property
    def label(self) -> str:
        name = self.method if self.stl_task is None else f"stl{self.stl_task}"
        return f"{name}/{self.optimizer}/lr{self.lr:g}/s{self.seed}"


NEW_FIELDS = {"dataset": "multi_fashion", "arch": None, "tiny": False}
"""Fields of :class:`RunSpec` left out of its key and record at these defaults."""


def device_mesh(devices: int | None) -> Mesh | None:
    """The data-parallel mesh of ``--devices``: ``None`` (one device, no sharding) for 1,
    the first ``devices`` local devices otherwise, all of them for ``None``."""
    n = len(jax.local_devices()) if devices is None else devices
    return None if n == 1 else data_mesh(n)


def _placement(mesh: Mesh | None, batch_size: int):
    """How a host batch reaches the step: as is on one device, sharded over ``mesh``."""
    if mesh is None:
        return lambda batch: batch
    if batch_size % mesh.size:
        raise ValueError(f"batch size {batch_size} cannot be split over {mesh.size} devices: "
                         "pick a batch size that is a multiple of --devices")
    return lambda batch: shard_batch(batch, mesh)


def _keep_outputs(apply_fn, keep: tuple[int, ...]):
    """``apply_fn`` returning only the predictions ``keep`` (a single-task run's step)."""

    def pick(out):
        return {k: out[k] for k in keep} if isinstance(out, dict) else tuple(out[k] for k in keep)

    def apply(variables, x, **kw):
        res = apply_fn(variables, x, **kw)
        if kw.get("mutable"):
            out, state = res
            return pick(out), state
        return pick(res)

    return apply


def legacy_split(result: dict, tasks: list[str]) -> dict:
    """An :func:`jaxmtl.training.evaluate_tasks` result in the Multi-Fashion record's
    format: ``{"loss": [per task], "accuracy": [per task]}``."""
    return {"loss": [result[t]["loss"] for t in tasks], "accuracy": [result[t]["accuracy"] for t in tasks]}


LEGACY_RECORDS = ("multi_fashion",)
"""Data sets whose records keep the original Multi-Fashion format (``val``/``test`` as
``{"loss": [...], "accuracy": [...]}``, no ``directions``/``metrics``): their stores predate
the other data sets."""


def train_run(spec: RunSpec, data: Any, *, progress=None, on_step=None,
              on_epoch=None, mesh: Mesh | None = None,
              checkpoint_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Trains one run on ``data`` (data set ``spec.dataset`` of
    :data:`experiments.datasets.DATASETS`, as :func:`~experiments.datasets.load_dataset`
    gives it), evaluating on validation and test after every epoch.

    The model, tasks, batches and model input come from the data set's entry
    (``spec.arch``, ``spec.tiny``); the generic steps
    (:func:`jaxmtl.training.make_task_train_step`, :func:`~jaxmtl.training.evaluate_tasks`)
    train and evaluate it, batch-norm state handled as :mod:`jaxmtl.training.steps` says.

    Returns a JSON-serialisable record: the spec, the task names, per-epoch train
    losses and val/test results, the median step time (compilation excluded) and
    the mean task weights of each epoch when the method records them. Multi-Fashion's
    ``val``/``test`` are ``{"loss": [per task], "accuracy": [per task]}``; other data
    sets' are ``{task: {"loss": l, metric: value, ...}}``, and their record adds
    ``directions`` (``{metric: higher is better}``, for delta-m) and ``metrics``
    (``{task: [metric names]}``, the first one selects single-task epochs).
    A run whose training loss stops being finite ends there, with ``"diverged"``
    set to the epoch (1-based) in which it happened and only the finite epochs
    kept; otherwise ``"diverged"`` is ``None``.

    Hooks: ``on_step(step, params, batch, rng)`` after every step (``step``
    counts from 0, ``params`` are the ones the step started from) and
    ``on_epoch(epoch_record, params)`` after every evaluation (``params``: the
    model's ``params`` collection).

    ``mesh`` (:func:`device_mesh`) trains data-parallel: each batch sharded over
    the mesh, parameters and optimiser state replicated (:mod:`jaxmtl.sharding`);
    the update is the one-device update. ``checkpoint_dir`` saves the run after
    every epoch (:class:`jaxmtl.training.RunCheckpoint`) and resumes from the
    latest checkpoint there, so a killed run finishes with the record an
    uninterrupted run gives (step times aside); hooks see only the epochs run
    in this call.
    """
    bench = get_dataset(spec.dataset)
    if len(data.train) < spec.batch_size:
        raise ValueError(f"{spec.dataset}: {len(data.train)} training examples, fewer than one batch of "
                         f"{spec.batch_size} (pass a smaller batch size)")
    all_tasks = bench.tasks(data)
    names = [t.name for t in all_tasks]
    num_tasks = len(all_tasks)
    model = bench.model(data, spec.arch or bench.archs[0], spec.tiny)
    key = jax.random.PRNGKey(spec.seed)
    init_key, key = jax.random.split(key)
    example = next(iter(bench.batches(data.train, 1)))[bench.input_key]
    variables = dict(model.init(init_key, example))
    params, state = variables.pop("params"), variables
    factor = lr_factor(spec.lr_schedule, spec.epochs, len(data.train) // spec.batch_size)
    if spec.stl_task is None:
        owners = task_of if weights_heads(spec.method) else None
        own = base_optimizer(spec.optimizer, spec.lr, factor=factor)
        method, t = build_method(spec.method, num_tasks, spec.seed, optimizer=own), num_tasks
        apply_fn, trained = model.apply, all_tasks
    else:
        method, t, owners = jaxmtl.linear(num_tasks=1), 1, None
        apply_fn, trained = _keep_outputs(model.apply, (spec.stl_task,)), (all_tasks[spec.stl_task],)
    tx = make_optimizer(spec.optimizer, spec.lr, method, num_tasks=t, shared=shared_mask,
                        task_of=owners, weight_decay=spec.weight_decay, factor=factor)
    opt_state = tx.init(params)
    step = make_task_train_step(apply_fn, tx, trained, shared=shared_mask, input_key=bench.input_key)
    eval_step = make_task_eval_step(model.apply, all_tasks, input_key=bench.input_key)
    eval_batch = bench.eval_batch_size or spec.batch_size
    legacy = spec.dataset in LEGACY_RECORDS
    put = _placement(mesh, spec.batch_size)
    if mesh is not None:
        step = data_parallel(step, mesh)
        params, state, opt_state = replicate((params, state, opt_state), mesh)
    rng = np.random.default_rng(spec.seed)
    epochs, step_times, diverged, count, start = [], [], None, 0, 0
    ckpt = None if checkpoint_dir is None else RunCheckpoint(checkpoint_dir)

    def arrays():  # what a checkpoint holds (no "state" entry for models without one)
        return {"params": params, "opt_state": opt_state, "key": key, **({"state": state} if state else {})}

    if ckpt is not None and (restored := ckpt.restore(arrays())) is not None:
        saved, host = restored
        params, opt_state, key, state = saved["params"], saved["opt_state"], saved["key"], saved.get("state", {})
        start, count, epochs, step_times = host["epoch"], host["count"], host["epochs"], host["step_times"]
        rng = restore_generator(host["rng"])
        if progress is not None:
            progress.update(count)

    def evaluate_split(split):
        result = evaluate_tasks(eval_step, {"params": params, **state},
                                bench.batches(split, eval_batch, drop_last=False), all_tasks, bench.input_key)
        return legacy_split(result, names) if legacy else result

    for epoch in range(start, spec.epochs):
        losses, weights = [], []
        for batch in prefetch(bench.batches(data.train, spec.batch_size, rng), device_put=False):
            key, sub = jax.random.split(key)
            if on_step is not None:
                on_step(count, params, batch, sub)
            start_time = time.perf_counter()
            variables, opt_state, loss = step({"params": params, **state}, opt_state, put(batch), sub)
            params, state = split_variables(variables)
            loss = jax.block_until_ready(loss)
            step_times.append(time.perf_counter() - start_time)
            losses.append(np.asarray(loss))
            w = recorded_weights(opt_state)
            if w is not None:
                weights.append(np.asarray(w))
            count += 1
            if progress is not None:
                progress.update(1)
        if not np.all(np.isfinite(losses)) or not all(
                np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(params)):
            diverged = epoch + 1
            if progress is not None:  # the steps this run will not take
                progress.update((spec.epochs - epoch - 1) * (len(data.train) // spec.batch_size))
            break
        record = {"epoch": epoch + 1, "train_loss": np.mean(losses, axis=0).tolist(),
                  "val": evaluate_split(data.val), "test": evaluate_split(data.test)}
        if weights:
            record["weights"] = np.mean(weights, axis=0).tolist()
        epochs.append(record)
        if ckpt is not None:
            ckpt.save(epoch + 1, arrays(),
                      {"epoch": epoch + 1, "count": count, "epochs": epochs, "step_times": step_times,
                       "rng": generator_state(rng)})
        if on_epoch is not None:
            on_epoch(record, params)
    if ckpt is not None:
        ckpt.close()
    out = {"key": spec.key, "label": spec.label, "spec": spec.record_fields(), "tasks": names,
           "epochs": epochs, "diverged": diverged, "backend": jax.default_backend(),
           "step_time_s": float(np.median(step_times[1:] or step_times)) if step_times else None}
    if not legacy:
        out["directions"] = higher_is_better(all_tasks)
        out["metrics"] = {task.name: [m.name for m in task.metrics] for task in all_tasks}
    return out


HIGHER = {"accuracy": True}
"""Direction of the Multi-Fashion metric (records without ``directions``)."""


def directions(record: dict) -> dict[str, bool]:
    """``{metric: higher is better}`` of a record's metrics."""
    return record.get("directions", HIGHER)


def primary_metric(record: dict, task: str) -> str:
    """The metric that ranks single-task runs of ``task``: its first (accuracy on Multi-Fashion)."""
    return record["metrics"][task][0] if "metrics" in record else "accuracy"


def as_metrics(split: dict, tasks: list[str]) -> dict:
    """The metrics of an evaluation (a record's ``val``/``test``) as ``{task: {metric: value}}``,
    losses left out: Multi-Fashion's ``{"accuracy": [...]}`` or the ``{task: {...}}`` of the
    other data sets."""
    if "accuracy" in split and isinstance(split["accuracy"], list):
        return {t: {"accuracy": a} for t, a in zip(tasks, split["accuracy"])}
    return {t: {k: v for k, v in split[t].items() if k != "loss"} for t in tasks}


def task_value(record: dict, split: dict, task: int, metric: str | None = None) -> float:
    """Metric ``metric`` (default: the task's primary one) of task number ``task`` in an evaluation."""
    name = record["tasks"][task]
    return as_metrics(split, record["tasks"])[name][metric or primary_metric(record, name)]


def epoch_score(epoch: dict, stl_task: int | None, tasks: list[str], baselines_val: dict | None,
                record: dict | None = None) -> float:
    """Validation score of one evaluation, lower is better: a single-task run's
    primary validation metric of its task (negated when higher is better: accuracy
    on Multi-Fashion), a multi-task run's validation delta-m against ``baselines_val``.
    ``record`` (the run's) gives the metrics' directions; Multi-Fashion's without it."""
    record = record or {"tasks": tasks}
    higher = directions(record)
    if stl_task is not None:
        metric = primary_metric(record, tasks[stl_task])
        value = task_value(record, epoch["val"], stl_task, metric)
        return -value if higher[metric] else value
    return delta_m(as_metrics(epoch["val"], tasks), baselines_val, higher)


def select_epoch(record: dict, baselines_val: dict | None) -> dict | None:
    """The epoch chosen on validation (early stopping, :func:`epoch_score`).
    ``None`` when the run has no finite epoch."""
    if not record["epochs"]:
        return None
    return min(record["epochs"], key=lambda e: epoch_score(e, record["spec"]["stl_task"], record["tasks"],
                                                           baselines_val, record))


def stl_baselines(records: list[dict]) -> tuple[dict, dict]:
    """Single-task references per seed: ``(val, test)``, each ``{seed: {task: {metric: value}}}``
    (Multi-Fashion: ``{"accuracy": a}``; the other data sets: every metric of the task).

    For every task and seed, the single-task run (any optimiser and learning rate)
    with the best validation primary metric (:func:`primary_metric`) at its selected
    epoch gives both the validation and the test reference; a seed without its own
    single-task run uses the best over all seeds. Raises ``ValueError`` when a task
    has no finite single-task run.
    """
    stl = [r for r in records if r["spec"]["stl_task"] is not None and r["epochs"]]
    tasks = records[0]["tasks"]
    base_val, base_test = {}, {}
    for seed in sorted({r["spec"]["seed"] for r in records}):
        base_val[seed], base_test[seed] = {}, {}
        for t, task in enumerate(tasks):
            runs = [r for r in stl if r["spec"]["stl_task"] == t and r["spec"]["seed"] == seed] or \
                   [r for r in stl if r["spec"]["stl_task"] == t]
            if not runs:
                raise ValueError(f"no finite single-task run for task {task!r}")
            best_run, best = min(((r, select_epoch(r, None)) for r in runs),
                                 key=lambda re: epoch_score(re[1], t, tasks, None, re[0]))
            base_val[seed][task] = as_metrics(best["val"], tasks)[task]
            base_test[seed][task] = as_metrics(best["test"], tasks)[task]
    return base_val, base_test


def steps_per_run(spec: RunSpec, data: Any) -> int:
    return spec.epochs * (len(data.train) // spec.batch_size)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: list[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} ± {fmt.format(np.std(values, ddof=1))}"


class _DatasetAction(argparse.Action):
    """``--dataset``: a parser error naming why when the study does not run on that data set."""

    def __init__(self, *args, allowed: tuple[str, ...] = (), why: str = "", study: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.allowed, self.why, self.study = allowed, why, study

    def __call__(self, parser, namespace, value, option_string=None):
        if value not in self.allowed:
            runs_on = f"runs on {', '.join(self.allowed)} only" if self.allowed else "takes no --dataset"
            parser.error(f"--dataset {value}: the {self.study} study {runs_on}"
                         f"{': ' + self.why if self.why else ''}")
        setattr(namespace, self.dest, value)


def study_parser(doc: str, name: str, presets: dict, *, data: bool = True,
                 datasets: tuple[str, ...] | None = None, why: str = "") -> argparse.ArgumentParser:
    """The arguments every study shares: ``--preset``, ``--out`` and, for studies that
    train, ``--dataset`` (any of :data:`experiments.datasets.DATASETS`; a study that runs
    on ``datasets`` only rejects the others with a parser error saying ``why``),
    ``--data-dir``, ``--devices`` and, where a study takes other data sets than
    Multi-Fashion, ``--arch`` and ``--tiny-model``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(presets), default="quick")
    parser.add_argument("--out", default=None, help=f"output directory (default results/{name}/<preset>)")
    if data:
        allowed = tuple(datasets or sorted(DATASETS))
        parser.add_argument("--dataset", choices=sorted(DATASETS), default="multi_fashion", action=_DatasetAction,
                            allowed=allowed, why=why, study=name,
                            help=f"the data set (docs/datasets.md); this study: {', '.join(allowed)}")
        parser.add_argument("--data-dir", default=None,
                            help="the data set's directory (Multi-Fashion: the Fashion-MNIST IDX files; "
                                 "Multi-MNIST: the MNIST IDX files; see docs/datasets.md)")
        if allowed != ("multi_fashion",):
            parser.add_argument("--arch", default=None,
                                help="the data set's model where it has several (Cityscapes, NYUv2: segnet, "
                                     "deeplab_resnet18, deeplab_resnet50); default: its first")
            parser.add_argument("--tiny-model", action="store_true",
                                help="the few-channel version of the model (smoke runs, tests)")
            parser.add_argument("--tasks", nargs="+", default=None,
                                help="Cityscapes' tasks (default: segmentation depth; paper C adds instance, "
                                     "see docs/datasets.md)")
        parser.add_argument("--devices", type=int, default=None,
                            help="train data-parallel on the first N local devices (default: all of "
                                 "them; the batch size must be a multiple of N)")
    elif why:  # a study without data: say so to a --dataset
        parser.add_argument("--dataset", choices=sorted(DATASETS), default=None, action=_DatasetAction,
                            allowed=(), why=why, study=name, help="(not taken: " + why + ")")
    return parser


def study_data(args: argparse.Namespace, settings: dict, seed: int = 0) -> tuple[Any, dict]:
    """The data set of a study's ``--dataset``/``--data-dir`` loaded with ``settings`` (the
    preset's ``data``; Cityscapes' ``--tasks`` is added to it), and the :class:`RunSpec`
    fields naming it (``dataset``, ``arch``, ``tiny``). Raises ``ValueError`` for an
    ``--arch`` the data set lacks or ``--tasks`` on another data set."""
    name = getattr(args, "dataset", "multi_fashion")
    arch, tiny = getattr(args, "arch", None), getattr(args, "tiny_model", False)
    archs = DATASETS[name].archs
    if arch is not None and arch not in archs:
        raise ValueError(f"--arch {arch}: {name} has the models {', '.join(archs)}")
    if getattr(args, "tasks", None):
        if name != "cityscapes":
            raise ValueError(f"--tasks: {name} has a fixed task set; only cityscapes takes one "
                             "(segmentation, depth, instance)")
        settings["tasks"] = list(args.tasks)   # in the preset's data settings, so in every run's key
    data = load_dataset(name, args.data_dir, seed=seed, **settings)
    return data, {"dataset": name, "arch": None if arch == archs[0] else arch, "tiny": tiny}


def open_store(out: Path) -> ResultStore:
    """The study's ``results.jsonl`` in ``out``, warning about unreadable lines."""
    store = ResultStore(out / "results.jsonl")
    if store.skipped_lines:
        print(f"warning: skipped {store.skipped_lines} unreadable line(s) in {store.path}", file=sys.stderr)
    return store


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_summary(out: Path, text: str, png: bytes | None, started: float) -> None:
    """Writes ``summary.md`` (and ``summary.png``) atomically and prints the summary."""
    atomic_write(out / "summary.md", text)
    if png is not None:
        atomic_write(out / "summary.png", png)
    print(text)
    print(f"wrote {out / 'results.jsonl'}, {out / 'summary.md'}"
          f"{', ' + str(out / 'summary.png') if png is not None else ''} ({time.time() - started:.0f} s)")


def with_overrides(preset: dict, args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """A copy of ``preset`` with the command-line values of ``names`` that were given."""
    cfg = dict(preset)
    cfg.update({n: getattr(args, n) for n in names if getattr(args, n) is not None})
    return cfg


def run_grid(specs: list[RunSpec], data: Any, store: ResultStore, *,
             devices: int | None = None) -> list[dict]:
    """Trains the runs of ``specs`` that ``store`` lacks, with one progress bar, and
    returns the records of all of ``specs``.

    Each run checkpoints after every epoch under ``checkpoints/<run key>`` beside
    the store and resumes from there when the study is started again; the
    checkpoint goes once the run's record is in the store. ``devices`` as in
    :func:`device_mesh`.
    """
    todo = [s for s in specs if s.key not in store]
    mesh = device_mesh(devices)
    print(f"{len(specs)} runs, {len(specs) - len(todo)} already done in {store.path}; "
          f"data: {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test examples"
          f"{f'; {mesh.size} devices' if mesh is not None else ''}")
    with tqdm(total=sum(steps_per_run(s, data) for s in todo), unit="step", dynamic_ncols=True) as bar:
        for spec in todo:
            bar.set_description(spec.label)
            directory = store.path.parent / "checkpoints" / spec.key
            store.add(train_run(spec, data, progress=bar, mesh=mesh, checkpoint_dir=directory))
            shutil.rmtree(directory, ignore_errors=True)
    return [store.get(s.key) for s in specs]
