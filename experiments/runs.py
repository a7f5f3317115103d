"""The one training stack of every study: the run spec, ``train_run`` with its hooks, the grid runner.

* :class:`RunSpec` -- one run (data set, model, tasks, method and its settings, optimiser,
  learning rate and schedule, weight decay, seed, epochs); its :attr:`~RunSpec.key` names
  the run in a study's result store, so a rerun skips it.
* :func:`train_run` -- trains and evaluates one run on any data set of
  :data:`experiments.datasets.DATASETS`; what a study measures along the way attaches as
  a :class:`Hook` (before each step, inside the jitted step from the task gradients,
  after each evaluation), never as a copy of the loop.
* :func:`run_grid` -- the runs of a study that its store lacks, with one progress bar,
  checkpointed every epoch so a killed study resumes mid-run.

Compiled steps are cached per configuration: runs that differ only in the seed (for a
deterministic method) reuse the train and evaluation steps of the first.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm import tqdm

import jaxmtl
from experiments.cli import UsageError
from experiments.datasets import DEFAULT, get as get_dataset
from experiments.optimizers import MTL_IO, base_optimizer, lr_factor, make_optimizer
from jaxmtl import registry
from jaxmtl.data import prefetch
from jaxmtl.data.tasks import higher_is_better
from jaxmtl.masking import resolve_mask
from jaxmtl.protocol import recorded_weights
from jaxmtl.models import shared_mask, task_of
from jaxmtl.sharding import data_mesh, data_parallel, replicate, shard_batch
from jaxmtl.training.checkpoint import RunCheckpoint, generator_state, restore_generator
from jaxmtl.training.results import RunLock, remove_empty_parents
from jaxmtl.training import ResultStore, evaluate_tasks, make_task_eval_step, make_task_train_step
from jaxmtl.training.held_out import make_held_out_train_step
from jaxmtl.training.representation import (loss_scale_weights, make_representation_train_step, rotated,
                                            with_rotations)
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
MODEL_OPTIMIZER = "model"
LEVELS = ("parameters", "representation")
HEADS = (None, "plain", "weighted", "loss_scales")
REPRESENTATION_MODULE = "encoder"
"""The submodule whose output is the shared representation (MultiLeNet's, MixedLeNet's)."""


def head_names(num_tasks: int) -> list[str]:
    """The heads' submodules of the models with a representation (``head_<t>``)."""
    return [f"head_{t}" for t in range(num_tasks)]
"""``method_kwargs={'optimizer': MODEL_OPTIMIZER}``: the method's own parameters are trained by the
model's optimiser (its learning rate, schedule and moments), as paper C trains UW's."""


def registry_name(name: str) -> str:
    """The registry method behind a method name or a :data:`LIBMTL_SETTINGS` name."""
    return LIBMTL_SETTINGS[name][0] if name in LIBMTL_SETTINGS else name


def build_method(name: str, num_tasks: int, seed: int = 0, *,
                 optimizer: optax.GradientTransformation | None = None,
                 kwargs: dict | None = None) -> optax.GradientTransformation:
    """The registry's method ``name`` (or a :data:`LIBMTL_SETTINGS` setting) for
    ``num_tasks`` tasks with the hyperparameters ``kwargs``; random methods are seeded
    with the run's ``seed`` (so seeds of a study draw different weights and orders).
    ``optimizer``: the model's optimiser, required by the settings in
    :data:`TRAINED_BY_MODEL_OPTIMIZER` and by ``kwargs={'optimizer': MODEL_OPTIMIZER}``.
    Fixed weights are ``'ew'`` with ``kwargs={'weights': [...]}``."""
    info = registry.get(registry_name(name))
    kwargs = {**(LIBMTL_SETTINGS[name][1](num_tasks) if name in LIBMTL_SETTINGS else {}), **(kwargs or {})}
    for vector in ("weights", "powers", "divisors"):
        if vector in kwargs:
            kwargs[vector] = jnp.asarray(kwargs[vector], jnp.float32)
    if name in TRAINED_BY_MODEL_OPTIMIZER or kwargs.get("optimizer") == MODEL_OPTIMIZER:
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
    """One training run.

    ``method``: a registry name or a :data:`LIBMTL_SETTINGS` name, with the
    hyperparameters ``method_kwargs`` (``'ew'`` with ``{'weights': [...]}``: fixed
    weights); ``method='stl'`` trains task ``stl_task`` alone. ``dataset`` names an
    entry of :data:`experiments.datasets.DATASETS`, ``data`` its loader settings,
    ``tasks`` the task names trained (``None``: the data set's own set), ``arch`` one
    of its models (``None``: its first), ``tiny`` the few-channel version of that
    model, ``dropout`` the model's dropout rate. ``origin``: a study's note of where
    a run comes from (paper C: the SMTO and rule behind fixed weights), part of the key.

    ``level``: where the method acts, ``'parameters'`` (the task gradients of the
    shared parameters) or ``'representation'`` (those of the shared representation,
    the model's ``encoder`` output: :mod:`jaxmtl.training.representation`, paper C's
    IMTL, MGDA-UB and GradDrop). ``heads``: the task-specific parameters' gradients,
    ``None`` (the method's kind decides: loss weightings weight them, aggregators give
    the plain sum), ``'plain'``, ``'weighted'`` (by the method's recorded weights, as
    paper C's Nash-MTL) or ``'loss_scales'`` (IMTL's ``exp(s_t)``, at the representation).
    """

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
    dataset: str = DEFAULT
    arch: str | None = None
    tiny: bool = False
    tasks: tuple[str, ...] | None = None
    dropout: float = 0.0
    method_kwargs: dict = field(default_factory=dict)
    origin: str | None = None
    level: str = "parameters"
    heads: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"level {self.level!r}: choose one of {LEVELS}")
        if self.heads not in HEADS:
            raise ValueError(f"heads {self.heads!r}: choose one of {HEADS}")
        if self.heads == "loss_scales" and self.level != "representation":
            raise ValueError("heads='loss_scales' (IMTL's exp(s)) needs level='representation'")

    def record_fields(self) -> dict:
        """The spec as a record holds it: the fields of :data:`NEW_FIELDS` only when they
        differ from their defaults (records and keys of the first studies predate them)."""
        fields = asdict(self)
        for name, default in NEW_FIELDS.items():
            if fields[name] == default:
                del fields[name]
        if fields.get("tasks") is not None:
            fields["tasks"] = list(fields["tasks"])
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
    def config(self) -> str:
        """The method and its hyperparameters, e.g. ``cagrad(c=0.5)``; fixed weights by origin."""
        if "weights" in self.method_kwargs:
            return f"fixed[{self.origin}]" if self.origin else "fixed"
        args = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.method_kwargs.items()))
        name = self.method + ("@z" if self.level == "representation" else "")
        name += "" if self.heads is None else f"[heads={self.heads}]"
        return f"{name}({args})" if args else name

    @property
    def label(self) -> str:
        name = self.config if self.stl_task is None else f"stl{self.stl_task}"
        prefix = "" if self.tasks is None else "+".join(self.tasks) + "/"
        dropout = f"/do{self.dropout:g}" if self.dropout else ""
        return f"{prefix}{name}/{self.optimizer}/lr{self.lr:g}{dropout}/s{self.seed}"

    @property
    def task_count(self) -> int | None:
        return None if self.tasks is None else len(self.tasks)

    @classmethod
    def from_record(cls, spec: dict, **changes) -> "RunSpec":
        """The spec of a record's ``spec`` dict, with ``changes``."""
        fields = {**spec, **changes}
        if fields.get("tasks") is not None:
            fields["tasks"] = tuple(fields["tasks"])
        return cls(**fields)


def _short(value) -> str:
    """A hyperparameter in a label: numbers as ``%g``, lists joined by ``:``."""
    if isinstance(value, (list, tuple)):
        return ":".join(_short(v) for v in value)
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


NEW_FIELDS = {"dataset": DEFAULT, "arch": None, "tiny": False, "tasks": None, "dropout": 0.0,
              "method_kwargs": {}, "origin": None, "level": "parameters", "heads": None}
"""Fields of :class:`RunSpec` left out of its key and record at these defaults."""


class Hook:
    """What a study measures along a run, attached to :func:`train_run` (every part optional).

    * :attr:`step_probe` -- ``probe(task_grads, params) -> pytree``, evaluated inside the
      jitted step on the step's task gradients and parameters (before the update); its
      value reaches :meth:`on_probe`. Steps are cached per probe function.
    * :meth:`on_step` -- before step ``step`` (from 0), with the parameters it starts from.
    * :meth:`on_probe` -- after step ``step``, with the probe's value and the new optimiser state.
    * :meth:`on_epoch` -- after each evaluation, with the epoch's record and the ``params``.
    * :meth:`record` -- what the hook adds to the run's record at the end.

    A hook with :attr:`variables` set gets the model's variables ``{"params": params,
    **state}`` (batch-norm statistics included) where the others get ``params``.
    """

    step_probe: Callable[[Any, Any], Any] | None = None
    variables: bool = False

    def on_step(self, step: int, params, batch, rng) -> None:
        pass

    def on_probe(self, step: int, value, opt_state) -> None:
        pass

    def on_epoch(self, record: dict, params) -> None:
        pass

    def record(self) -> dict:
        return {}


def shared_rows(tree, params) -> jax.Array:
    """A step probe's gradients as one array: the leaves of ``tree`` on the shared parameters
    (``shared_mask`` of ``params``), flattened and joined, ``(P,)`` for a parameter-shaped tree
    and ``(T, P)`` for stacked task gradients; a ``tree`` of another structure than ``params``
    (a method at the representation: ``{"encoder": J_z}``, :mod:`jaxmtl.training.representation`)
    is stacked task gradients taken whole."""
    leaves = jax.tree.leaves(tree)
    if jax.tree.structure(tree) != jax.tree.structure(params):
        return jnp.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=-1)
    mask = jax.tree.leaves(resolve_mask(shared_mask, params))
    kept = [(x, p) for m, x, p in zip(mask, leaves, jax.tree.leaves(params)) if m]
    return jnp.concatenate([x.reshape(*x.shape[:x.ndim - p.ndim], -1) for x, p in kept], axis=-1)


def device_mesh(devices: int | None) -> Mesh | None:
    """The data-parallel mesh of ``--devices``: ``None`` (one device, no sharding) for 1,
    the first ``devices`` local devices otherwise, all of them for ``None``; a
    :class:`~experiments.cli.UsageError` for more devices than there are."""
    local = len(jax.local_devices())
    n = local if devices is None else devices
    if n > local:
        raise UsageError(f"--devices {n}: {local} local device(s) ({jax.default_backend()}); on CPU, "
                         "XLA_FLAGS=--xla_force_host_platform_device_count=N fakes N devices")
    return None if n == 1 else data_mesh(n)


def _placement(mesh: Mesh | None, batch_size: int):
    """How a host batch reaches the step: as is on one device, sharded over ``mesh``."""
    if mesh is None:
        return lambda batch: batch
    if batch_size % mesh.size:
        raise UsageError(f"batch size {batch_size} cannot be split over {mesh.size} devices: "
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


def steps_per_epoch(spec: RunSpec, data: Any) -> int:
    return len(data.train) // spec.batch_size


def steps_per_run(spec: RunSpec, data: Any) -> int:
    return spec.epochs * steps_per_epoch(spec, data)


class _Steps:
    """The compiled pieces of one configuration: model, tasks, init, train and eval steps."""

    def __init__(self, spec: RunSpec, data: Any, probe: Callable | None):
        bench = get_dataset(spec.dataset)
        self.tasks = bench.tasks(data, spec.tasks)
        self.model = bench.model(data, spec.arch or bench.archs[0], spec.tiny, spec.dropout, spec.tasks)
        num_tasks = len(self.tasks)
        factor = lr_factor(spec.lr_schedule, spec.epochs, steps_per_epoch(spec, data), spec.lr)
        kwargs = dict(spec.method_kwargs)
        # lr_relation: the method's own parameters learn at the model's learning rate times it, as
        # paper C's code: RotoGrad's rotations (scheduled as the model's), Auto-Lambda's weights
        relation = kwargs.pop("lr_relation", None)
        self.rotations = relation is not None and spec.method == "rotograd"
        if self.rotations and spec.level != "representation":
            raise ValueError("method_kwargs lr_relation (RotoGrad's rotations) needs level='representation'")
        if relation is not None and not self.rotations:
            kwargs["lr"] = spec.lr * relation
        self.lr_at = (lambda count: spec.lr * float(factor(count))) if callable(factor) else (lambda count: spec.lr)
        if spec.stl_task is None:
            heads = spec.heads or ("weighted" if weights_heads(spec.method) else "plain")
            owners = task_of if heads == "weighted" else None
            own = base_optimizer(spec.optimizer, spec.lr, factor=factor)
            method, t = build_method(spec.method, num_tasks, spec.seed, optimizer=own, kwargs=kwargs), num_tasks
            apply_fn, trained = self.model.apply, self.tasks
            if self.rotations:
                apply_fn = rotated(apply_fn, head_names(num_tasks))
        else:
            method, t, owners, heads = jaxmtl.linear(num_tasks=1), 1, None, "plain"
            apply_fn, trained = _keep_outputs(self.model.apply, (spec.stl_task,)), (self.tasks[spec.stl_task],)
        # a method that reads the previous batch's losses at the current parameters (the registry's
        # optional_args: FAMO's "after" losses on the step's own batch, as its official code)
        info = registry.get(registry_name(spec.method)) if spec.stl_task is None else None
        self.previous = info is not None and "prev_batch_losses" in info.optional_args
        # a method that learns from a held-out batch (Auto-Lambda: paper C draws it from validation)
        self.held_out = info is not None and "val_grad" in info.extra_args
        if spec.level == "representation":
            if self.previous or self.held_out:
                raise ValueError(f"{spec.method} reads another batch's losses: run it at the parameters")
            self.tx = make_optimizer(spec.optimizer, spec.lr, optax.identity(), num_tasks=t,
                                     weight_decay=spec.weight_decay, factor=factor)
            weights = {"plain": None, "weighted": recorded_weights, "loss_scales": loss_scale_weights}[heads]
            rotation_tx = None
            if self.rotations:   # the official code: its own Adam group, no weight decay, the same schedule
                rot_lr = spec.lr * relation
                rotation_tx = base_optimizer(spec.optimizer, rot_lr, factor=lr_factor(
                    spec.lr_schedule, spec.epochs, steps_per_epoch(spec, data), rot_lr))
            self.init, self.train = make_representation_train_step(
                apply_fn, method, self.tx, trained, module=REPRESENTATION_MODULE, input_key=bench.input_key,
                head_weights=weights, probe=probe, rotation_tx=rotation_tx)
        else:
            self.tx = make_optimizer(spec.optimizer, spec.lr, method, num_tasks=t, shared=shared_mask,
                                     task_of=owners, weight_decay=spec.weight_decay, factor=factor)
            self.init = self.tx.init
            if self.held_out:
                self.train = make_held_out_train_step(apply_fn, self.tx, trained, shared=shared_mask,
                                                      input_key=bench.input_key, probe=probe,
                                                      weight_decay=spec.weight_decay)
            else:
                # a Gramian method under a shared optimiser: no Jacobian of the routed Dense layers
                lean = (info is not None and info.kind == "gramian" and probe is None
                        and spec.optimizer not in ("adatask", *MTL_IO))
                self.train = make_task_train_step(apply_fn, self.tx, trained, shared=shared_mask,
                                                  input_key=bench.input_key, probe=probe,
                                                  previous_batch=self.previous, lean_gramian=lean)
        self.eval = _eval_step(spec, data, self.model, self.tasks, self.rotations)

    def start(self, params: Any, state: dict, example: Any) -> tuple[Any, Any]:
        """The run's initial ``(params, optimiser state)`` from the model's parameters and other
        collections (identity rotations added for RotoGrad)."""
        if self.rotations:
            params = with_rotations({"params": params, **state}, self.model.apply, example, REPRESENTATION_MODULE,
                                    len(self.tasks))
        return params, self.init(params)


_CACHE: "OrderedDict[str, Any]" = OrderedDict()
CACHE_SIZE = 32
"""Compiled configurations kept (least recently used dropped first)."""


def _cached(key: list, data: Any, build: Callable[[], Any]) -> Any:
    """``build()``'s result for ``key`` on ``data`` (its identity is part of the key), cached."""
    name = json.dumps([id(data), *key], sort_keys=True, default=str)
    entry = _CACHE.get(name)
    if entry is None or entry[0] is not data:   # (data held, so its id stays its own)
        entry = _CACHE[name] = (data, build())
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(name)
    return entry[1]


def _eval_step(spec: RunSpec, data: Any, model, tasks, rotations: bool = False):
    """The evaluation step of the model of ``spec``: one for every run of that model and task set
    (``rotations``: with RotoGrad's rotations before the heads)."""
    bench = get_dataset(spec.dataset)
    key = ["eval", spec.dataset, spec.arch, spec.tiny, spec.dropout, spec.tasks, rotations]
    apply_fn = rotated(model.apply, head_names(len(tasks))) if rotations else model.apply
    return _cached(key, data, lambda: make_task_eval_step(apply_fn, tasks, input_key=bench.input_key))


def _steps(spec: RunSpec, data: Any, probe: Callable | None) -> _Steps:
    """The cached :class:`_Steps` of ``spec`` on ``data``: shared by runs that differ only in
    the seed when the method draws nothing at random (the seed then only sets the
    initialisation, the batch order and the dropout masks, all inputs of the step)."""
    fields = spec.record_fields()
    del fields["data"]
    method = registry_name(spec.method) if spec.stl_task is None else None
    if method is None or not registry.get(method).random:
        del fields["seed"]
    probe_name = None if probe is None else f"{probe.__module__}.{probe.__qualname__}"
    return _cached(["train", fields, probe_name], data, lambda: _Steps(spec, data, probe))


def _combined_probe(hooks: Sequence[Hook]):
    probes = tuple(h.step_probe for h in hooks if h.step_probe is not None)
    if not probes:
        return None
    if len(probes) == 1:
        return probes[0]
    return _ProbeTuple(probes)


class _ProbeTuple:
    """Several hooks' probes as one (a tuple of their values)."""

    def __init__(self, probes):
        self.probes = probes
        self.__module__ = __name__
        self.__qualname__ = "+".join(f"{p.__module__}.{p.__qualname__}" for p in probes)

    def __call__(self, task_grads, params):
        return tuple(p(task_grads, params) for p in self.probes)


def _probe_values(hooks: Sequence[Hook], value):
    """Each probing hook's part of the step's probe value."""
    probing = [h for h in hooks if h.step_probe is not None]
    return zip(probing, value if len(probing) > 1 else (value,))


HELD_OUT_BATCH = 100
"""The held-out batch of a method that learns from one (paper C's validation batch for Auto-Lambda)."""


def held_out_batches(bench, split: Any, size: int, seed: int):
    """Batches of ``size`` from ``split``, reshuffled each pass, without end (a resumed run starts
    them over)."""
    rng = np.random.default_rng([seed, 1])
    while True:
        yield from bench.batches(split, size, rng)


def train_run(spec: RunSpec, data: Any, *, progress=None, hooks: Sequence[Hook] = (), mesh: Mesh | None = None,
              checkpoint_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Trains one run on ``data`` (data set ``spec.dataset`` of
    :data:`experiments.datasets.DATASETS`, as :func:`~experiments.datasets.load_dataset`
    gives it), evaluating on validation and test after every epoch.

    The model, tasks, batches and model input come from the data set's entry
    (``spec.arch``, ``spec.tiny``, ``spec.dropout``, ``spec.tasks``); the generic
    steps (:func:`jaxmtl.training.make_task_train_step`,
    :func:`~jaxmtl.training.evaluate_tasks`) train and evaluate it, batch-norm state
    handled as :mod:`jaxmtl.training.steps` says.

    Returns a JSON-serialisable record: the spec, the task names, per-epoch train
    losses and val/test results, the median step time (compilation excluded) and
    the mean task weights of each epoch when the method records them. A data set
    with :attr:`~experiments.datasets.Benchmark.legacy_record` (Multi-Fashion) keeps
    ``val``/``test`` as ``{"loss": [per task], "accuracy": [per task]}``; the others'
    are ``{task: {"loss": l, metric: value, ...}}``, and their record adds
    ``directions`` (``{metric: higher is better}``, for delta-m) and ``metrics``
    (``{task: [metric names]}``, the first one selects single-task epochs).
    A run whose training loss stops being finite ends there, with ``"diverged"``
    set to the epoch (1-based) in which it happened and only the finite epochs
    kept; otherwise ``"diverged"`` is ``None``. Each hook's :meth:`Hook.record` is
    merged into the record.

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
        raise UsageError(f"{spec.dataset}: {len(data.train)} training examples, fewer than one batch of "
                         f"{spec.batch_size} (pass a smaller batch size)")
    probe = _combined_probe(hooks)
    steps = _steps(spec, data, probe)
    names = [t.name for t in steps.tasks]
    key = jax.random.PRNGKey(spec.seed)
    init_key, key = jax.random.split(key)
    example = next(iter(bench.batches(data.train, 1)))[bench.input_key]
    variables = dict(steps.model.init(init_key, example))
    params, state = variables.pop("params"), variables
    params, opt_state = steps.start(params, state, example)
    step = steps.train
    eval_batch = bench.eval_batch_size or spec.batch_size
    put = _placement(mesh, spec.batch_size)
    if mesh is not None:
        step = data_parallel(step, mesh)
        params, state, opt_state = replicate((params, state, opt_state), mesh)
    rng = np.random.default_rng(spec.seed)
    epochs, step_times, diverged, count, start = [], [], None, 0, 0
    # the previous step's batch (a method of USES_PREVIOUS_BATCH): any batch before the first
    # step (FAMO's first update has no "before" losses), and in the checkpoint
    previous = put(next(iter(bench.batches(data.train, spec.batch_size)))) if steps.previous else None
    ckpt = None if checkpoint_dir is None else RunCheckpoint(checkpoint_dir)
    if steps.held_out and mesh is not None:
        raise UsageError(f"{spec.method} learns from held-out batches: train it on one device")
    held_out = held_out_batches(bench, data.val, min(HELD_OUT_BATCH, len(data.val)), spec.seed)

    def arrays():  # what a checkpoint holds (no "state" entry for models without one)
        return {"params": params, "opt_state": opt_state, "key": key, **({"state": state} if state else {}),
                **({"previous": previous} if previous is not None else {})}

    if ckpt is not None and (restored := ckpt.restore(arrays())) is not None:
        saved, host = restored
        params, opt_state, key, state = saved["params"], saved["opt_state"], saved["key"], saved.get("state", {})
        previous = saved.get("previous")
        start, count, epochs, step_times = host["epoch"], host["count"], host["epochs"], host["step_times"]
        rng = restore_generator(host["rng"])
        if progress is not None:
            progress.update(count)

    def evaluate_split(split):
        result = evaluate_tasks(steps.eval, {"params": params, **state},
                                bench.batches(split, eval_batch, drop_last=False), steps.tasks, bench.input_key)
        return legacy_split(result, names) if bench.legacy_record else result

    for epoch in range(start, spec.epochs):
        losses, weights = [], []
        for batch in prefetch(bench.batches(data.train, spec.batch_size, rng), device_put=False):
            key, sub = jax.random.split(key)
            for hook in hooks:
                hook.on_step(count, {"params": params, **state} if hook.variables else params, batch, sub)
            start_time = time.perf_counter()
            batch = put(batch)
            extra = (previous,) if steps.previous else ()
            if steps.held_out:
                extra = (next(held_out), jnp.float32(steps.lr_at(count)))
            out = step({"params": params, **state}, opt_state, batch, sub, *extra)
            previous = batch if steps.previous else None
            variables, opt_state, loss = out[:3]
            params, state = split_variables(variables)
            loss = jax.block_until_ready(loss)
            step_times.append(time.perf_counter() - start_time)
            losses.append(np.asarray(loss))
            w = recorded_weights(opt_state)
            if w is not None:
                weights.append(np.asarray(w))
            if probe is not None:
                for hook, value in _probe_values(hooks, out[3]):
                    hook.on_probe(count, value, opt_state)
            count += 1
            if progress is not None:
                progress.update(1)
        if not np.all(np.isfinite(losses)) or not all(
                np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(params)):
            diverged = epoch + 1
            if progress is not None:  # the steps this run will not take
                progress.update((spec.epochs - epoch - 1) * steps_per_epoch(spec, data))
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
        for hook in hooks:
            hook.on_epoch(record, {"params": params, **state} if hook.variables else params)
    if ckpt is not None:
        ckpt.close()
    out = {"key": spec.key, "label": spec.label, "spec": spec.record_fields(), "tasks": names,
           "epochs": epochs, "diverged": diverged, "backend": jax.default_backend(),
           "step_time_s": float(np.median(step_times[1:] or step_times)) if step_times else None}
    if not bench.legacy_record:
        out["directions"] = higher_is_better(steps.tasks)
        out["metrics"] = {task.name: [m.name for m in task.metrics] for task in steps.tasks}
    for hook in hooks:
        out.update(hook.record())
    return out


def run_grid(specs: list[RunSpec], data: Any, store: ResultStore, *, devices: int | None = None,
             hooks: Callable[[RunSpec], Sequence[Hook]] | None = None,
             key: Callable[[RunSpec], str] | None = None, phase: str | None = None) -> list[dict]:
    """Trains the runs of ``specs`` that ``store`` lacks, with one progress bar, and
    returns the records of all of ``specs`` (in their order; a spec listed twice is
    trained once).

    ``hooks(spec)`` gives each run its fresh hooks; ``key(spec)`` its key in the store
    (default ``spec.key``: a study whose hooks shape the record adds their settings).
    Each run without hooks checkpoints after every epoch under ``checkpoints/<run
    key>`` beside the store and resumes from there when the study is started again;
    the checkpoint goes once the run's record is in the store (a run with hooks starts
    again: what its hooks collected is not in a checkpoint), and no empty folder stays.
    ``devices`` as in :func:`device_mesh`.

    Several processes may run grids on one store: a run is trained by the process
    holding its lock (:class:`~jaxmtl.training.results.RunLock`, ``checkpoints/<key>.lock``);
    another process says so in one line, trains its other runs first, then waits for
    the run's record (and trains it itself if the owner died without one). Ctrl-C
    drops the current run (its last epoch's checkpoint stays) and raises a
    ``KeyboardInterrupt`` saying how many runs are done (printed by
    :func:`experiments.cli.run_main`).
    """
    key = key or (lambda s: s.key)
    unique = list({key(s): s for s in specs}.values())
    todo = [s for s in unique if key(s) not in store]
    mesh = device_mesh(devices)
    print(f"{phase + ': ' if phase else ''}{len(specs)} runs, {len(specs) - len(todo)} already done in "
          f"{store.path}; data: {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test examples"
          f"{f'; {mesh.size} devices' if mesh is not None else ''}")
    root = store.path.parent / "checkpoints"
    with tqdm(total=sum(steps_per_run(s, data) for s in todo), unit="step", dynamic_ncols=True,
              disable=not todo) as bar:   # a finished rerun: the line above, no empty bar

        def train(spec: RunSpec, wait: bool) -> bool:
            lock = RunLock(root / f"{key(spec)}.lock")
            if not lock.acquire():
                if not wait:
                    tqdm.write(f"{spec.label}: process {lock.owner()} is training it; "
                               "training the other runs first")
                    return False
                tqdm.write(f"{spec.label}: waiting for process {lock.owner()}, which is training it")
                lock.acquire(wait=True)
            try:
                store.refresh()
                if key(spec) in store:   # trained by another process meanwhile
                    bar.update(steps_per_run(spec, data))
                    return True
                bar.set_description(spec.label)
                attached = hooks(spec) if hooks is not None else ()
                directory = None if attached else root / spec.key
                record = train_run(spec, data, progress=bar, mesh=mesh, checkpoint_dir=directory, hooks=attached)
                store.add({**record, "key": key(spec)})
                if directory is not None:
                    shutil.rmtree(directory, ignore_errors=True)
            finally:
                lock.release()
                remove_empty_parents(lock.path, root)
            return True

        try:
            others = [spec for spec in todo if not train(spec, wait=False)]
            for spec in others:
                train(spec, wait=True)
        except KeyboardInterrupt:
            bar.close()
            store.refresh()
            done = sum(key(s) in store for s in unique)
            raise KeyboardInterrupt(f"interrupted: {done} of {len(unique)} runs done in {store.path}; run the "
                                    "same command again to resume (a cut run from its last finished epoch)") from None
    return [store.get(key(s)) for s in specs]
