"""Training pieces of the paper C study (:mod:`experiments.uniform_vs_specialized`).

Gama & Grassi (2025), "Uniform Loss vs. Specialized Optimization": Multi-MNIST
tasks CL/CR (classify the left/right item) and RL/RR (reconstruct it), trained
with :class:`jaxmtl.models.MixedLeNet`, Adam with coupled L2 weight decay and an
exponential learning-rate decay of 0.95 per epoch (staircase).

* losses: cross-entropy for a classification task, the mean squared error per
  pixel for a reconstruction task (its metric on validation/test too, lower is
  better; a classification task's metric is accuracy, higher is better);
* :class:`CSpec` one run, :func:`train_run` trains and evaluates it after every
  epoch and records, every ``every`` steps, the method's weights and the
  interference statistic (:func:`interference`);
* :func:`select_epoch` picks the best-validation epoch by paper C's delta-m
  against single-task baselines (:func:`stl_baselines`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl
from experiments.common import weights_heads
from experiments.optimizers import make_optimizer
from jaxmtl import registry
from jaxmtl.data import MultiMNIST, pair_batches
from jaxmtl.jacobian import value_and_jacobian
from jaxmtl.masking import resolve_mask
from jaxmtl.method import recorded_weights
from jaxmtl.models import MixedLeNet, shared_mask, task_of
from jaxmtl.training import delta_m

LR_DECAY = 0.95
"""Exponential learning-rate decay per epoch (paper C)."""
HIGHER = {"accuracy": True, "recon_error": False}
"""Direction of the two Multi-MNIST metrics."""
EVAL_BATCH = 500
FIXED = "fixed"
"""``CSpec.method`` of a run with fixed weights (``jaxmtl.linear(weights=...)``)."""
UNIFORM = "mean"
"""Unit. Scal., the mean of the task losses (the registry's ``'mean'``)."""
STL = "stl"
"""``CSpec.origin`` prefix of a single-task baseline (fixed one-hot weights)."""


def metric_name(task: str) -> str:
    """``'accuracy'`` for CL/CR, ``'recon_error'`` for RL/RR."""
    return "accuracy" if task.startswith("C") else "recon_error"


def _side(task: str) -> int:
    return 0 if task.endswith("L") else 1


def task_losses(outputs: tuple, batch: dict, tasks: tuple[str, ...]) -> jax.Array:
    """``f32[T]``: cross-entropy of a classification head, per-pixel MSE of a reconstruction head."""
    losses = []
    for out, task in zip(outputs, tasks):
        if task.startswith("C"):
            ce = optax.softmax_cross_entropy_with_integer_labels(out.astype(jnp.float32),
                                                                 batch["labels"][:, _side(task)])
            losses.append(jnp.mean(ce))
        else:
            losses.append(jnp.mean((out - batch["items"][:, _side(task)]) ** 2))
    return jnp.stack(losses)


def interference(task_grads: Any, params: Any) -> jax.Array:
    """Paper C's interference statistic: ``mean_t cos(g_t, mean_s g_s)`` over the shared
    parameters (the stacked leaves of ``task_grads``, :func:`jaxmtl.value_and_jacobian`)."""
    mask = jax.tree.leaves(resolve_mask(shared_mask, params))
    rows = [g.reshape(g.shape[0], -1) for m, g in zip(mask, jax.tree.leaves(task_grads)) if m]
    jac = jnp.concatenate(rows, axis=1)
    mean = jnp.mean(jac, axis=0)
    cos = jac @ mean / (jnp.linalg.norm(jac, axis=1) * jnp.linalg.norm(mean) + 1e-20)
    return jnp.mean(cos)


@dataclass(frozen=True)
class CSpec:
    """One paper C run. ``method`` is a registry name or :data:`FIXED` (then ``weights``
    and ``origin``: ``'<smto>/<rule>'`` for weights from an SMTO's run, ``'stl/<task>'``
    for a single-task baseline); ``kwargs`` the method's hyperparameters."""

    tasks: tuple[str, ...]
    method: str
    lr: float
    dropout: float
    weight_decay: float
    seed: int
    epochs: int
    batch_size: int
    data: dict = field(default_factory=dict)
    kwargs: dict = field(default_factory=dict)
    weights: tuple[float, ...] | None = None
    origin: str | None = None

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return f"{self.label}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    @property
    def config(self) -> str:
        """The method and its hyperparameters, e.g. ``cagrad(c=0.5)``."""
        if self.method == FIXED:
            return f"fixed[{self.origin}]"
        args = ",".join(f"{k}={v:g}" for k, v in sorted(self.kwargs.items()))
        return f"{self.method}({args})" if args else self.method

    @property
    def label(self) -> str:
        return (f"{'+'.join(self.tasks)}/{self.config}/lr{self.lr:g}/do{self.dropout:g}"
                f"/wd{self.weight_decay:g}/s{self.seed}")


def fixed_weights_of(spec: CSpec) -> tuple[float, ...] | None:
    """The weights of a run with fixed weights: ``spec.weights`` for :data:`FIXED`, ``1/T``
    each for Unit. Scal. (``'mean'``: ``jaxmtl.linear(reduction='mean')``), else ``None``."""
    t = len(spec.tasks)
    if spec.method == UNIFORM:
        return (1.0 / t,) * t
    if spec.method != FIXED:
        return None
    if spec.weights is None or len(spec.weights) != t:
        raise ValueError(f"a fixed-weights run of {t} tasks needs {t} weights, got {spec.weights}")
    return spec.weights


def build_tx(spec: CSpec, steps_per_epoch: int, weights: Any = None) -> optax.GradientTransformation:
    """The method of ``spec`` on the encoder (heads weighted for loss weightings) inside
    Adam with coupled L2 decay and the per-epoch exponential decay of a unit learning
    rate (the step multiplies the update by ``spec.lr``: Adam's update is linear in it).
    A run with fixed weights (:func:`fixed_weights_of`) is ``jaxmtl.linear(weights=...)``
    with ``weights`` (traced inside the step, so all of them share one compilation)."""
    t = len(spec.tasks)
    fixed = fixed_weights_of(spec)
    if fixed is not None:
        w = fixed if weights is None else weights
        method, owners = jaxmtl.linear(weights=jnp.asarray(w, jnp.float32), num_tasks=t), task_of
    else:
        info = registry.get(spec.method)
        seed = {"seed": spec.seed} if info.random else {}
        method = info.build(t, **seed, **spec.kwargs)
        owners = task_of if weights_heads(spec.method) else None
    schedule = optax.exponential_decay(1.0, steps_per_epoch, LR_DECAY, staircase=True)
    return make_optimizer("adam", schedule, method, num_tasks=t, shared=shared_mask, task_of=owners,
                          weight_decay=spec.weight_decay)


def model_of(tasks: tuple[str, ...], dropout: float = 0.0) -> MixedLeNet:
    return MixedLeNet(heads=tuple("classify" if t.startswith("C") else "reconstruct" for t in tasks),
                      dropout=dropout)


_COMPILED: dict[str, tuple] = {}


def _compiled(spec: CSpec, steps_per_epoch: int):
    """The train step of the configuration of ``spec``; runs that differ only in the
    learning rate, the fixed weights (Unit. Scal. included) or, for a deterministic
    method, the seed share it, and so its compilation."""
    fields = asdict(spec)
    for name in ("data", "lr", "weights", "origin"):
        del fields[name]
    if fixed_weights_of(spec) is not None:
        fields.update(method=FIXED, kwargs={})
    if fields["method"] == FIXED or not registry.get(spec.method).random:
        del fields["seed"]
    cache_key = json.dumps([fields, steps_per_epoch], sort_keys=True)
    if cache_key not in _COMPILED:
        _COMPILED[cache_key] = _build_step(spec, steps_per_epoch)
    return _COMPILED[cache_key]


def _build_step(spec: CSpec, steps_per_epoch: int):
    model = model_of(spec.tasks, spec.dropout)

    def loss_fn(params, batch, rng):
        out = model.apply({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
        return task_losses(out, batch, spec.tasks)

    grads_fn = value_and_jacobian(loss_fn, shared=shared_mask)

    @jax.jit
    def step(params, opt_state, batch, rng, lr, weights):
        tx = build_tx(spec, steps_per_epoch, weights)
        losses, grads = grads_fn(params, batch, rng)
        updates, opt_state = tx.update(grads, opt_state, params, losses=losses)
        updates = jax.tree.map(lambda u: lr * u, updates)
        return optax.apply_updates(params, updates), opt_state, losses, interference(grads, params)

    return step


@functools.lru_cache(maxsize=16)
def _init_params(tasks: tuple[str, ...], shape: tuple[int, ...]):
    """Jitted parameter initialisation of the network for ``tasks`` (dropout has no parameters)."""
    model = model_of(tasks)
    return jax.jit(lambda key: model.init(key, jnp.zeros((1, *shape), jnp.float32))["params"])


@functools.lru_cache(maxsize=16)
def _eval_step(tasks: tuple[str, ...]):
    model = model_of(tasks)

    @jax.jit
    def step(params, batch):
        outs = model.apply({"params": params}, batch["image"], train=False)
        sums = []
        for out, task in zip(outs, tasks):
            if task.startswith("C"):
                sums.append(jnp.sum(jnp.argmax(out, -1) == batch["labels"][:, _side(task)]).astype(jnp.float32))
            else:
                err = jnp.mean((out - batch["items"][:, _side(task)]) ** 2, axis=(1, 2))
                sums.append(jnp.sum(err))
        return jnp.stack(sums)

    return step


def evaluate(params: Any, split, tasks: tuple[str, ...]) -> list[float]:
    """Per-task metric (accuracy or reconstruction error) of ``params`` on ``split``."""
    step = _eval_step(tasks)
    total, n = 0.0, 0
    for batch in pair_batches(split, tasks, EVAL_BATCH, drop_last=False):
        total = total + np.asarray(step(params, batch))
        n += len(batch["labels"])
    return (np.asarray(total) / n).tolist()


def steps_per_epoch(spec: CSpec, data: MultiMNIST) -> int:
    n = len(data.train) // spec.batch_size
    if n == 0:
        raise ValueError(f"{len(data.train)} training canvases are fewer than one batch of {spec.batch_size}")
    return n


def train_run(spec: CSpec, data: MultiMNIST, *, every: int, progress=None) -> dict[str, Any]:
    """Trains ``spec``; evaluates on validation and test after every epoch.

    Returns a JSON-serialisable record: the spec, per epoch the mean train losses,
    the per-task ``val``/``test`` metrics and the mean recorded weights
    (``weights``, when the method records them); ``trace``: every ``every`` steps
    ``[step, interference, weights or None]``; ``diverged`` (1-based epoch of the
    first non-finite loss, training ends there, or ``None``) and the median step time.
    """
    per_epoch = steps_per_epoch(spec, data)
    step = _compiled(spec, per_epoch)
    lr = jnp.float32(spec.lr)
    fixed = fixed_weights_of(spec)
    fixed = None if fixed is None else jnp.asarray(fixed, jnp.float32)
    key = jax.random.PRNGKey(spec.seed)
    init_key, key = jax.random.split(key)
    params = _init_params(tuple(spec.tasks), data.train.images.shape[1:])(init_key)
    opt_state = build_tx(spec, per_epoch).init(params)
    rng = np.random.default_rng(spec.seed)
    epochs, trace, times, diverged, count = [], [], [], None, 0
    for epoch in range(spec.epochs):
        losses, weights = [], []
        for batch in pair_batches(data.train, spec.tasks, spec.batch_size, rng):
            key, sub = jax.random.split(key)
            start = time.perf_counter()
            params, opt_state, loss, inter = step(params, opt_state, batch, sub, lr, fixed)
            losses.append(np.asarray(jax.block_until_ready(loss)))
            times.append(time.perf_counter() - start)
            w = recorded_weights(opt_state)
            w = None if w is None else np.asarray(w).tolist()
            if w is not None:
                weights.append(w)
            if count % every == 0:
                trace.append([count, float(inter), w])
            count += 1
            if progress is not None:
                progress.update(1)
        if not np.all(np.isfinite(losses)):
            diverged = epoch + 1
            if progress is not None:
                progress.update((spec.epochs - epoch - 1) * per_epoch)
            break
        record = {"epoch": epoch + 1, "train_loss": np.mean(losses, axis=0).tolist(),
                  "val": evaluate(params, data.val, spec.tasks), "test": evaluate(params, data.test, spec.tasks)}
        if weights:
            record["weights"] = np.mean(weights, axis=0).tolist()
        epochs.append(record)
    return {"key": spec.key, "label": spec.label, "spec": asdict(spec), "epochs": epochs, "trace": trace,
            "diverged": diverged, "step_time_s": float(np.median(times[1:] or times)) if times else None}


def as_metrics(values: list[float], tasks: tuple[str, ...] | list[str]) -> dict:
    """Per-task metric list as ``{task: {metric: value}}`` (the input of :func:`delta_m`)."""
    return {t: {metric_name(t): v} for t, v in zip(tasks, values)}


def stl_baselines(records: list[dict]) -> tuple[dict, dict]:
    """Per task, the single-task run (origin ``'stl/<task>'``, any configuration) with the
    best validation metric at its best epoch: ``(val, test)``, each ``{task: {metric: value}}``."""
    val, test = {}, {}
    for r in records:
        origin = r["spec"]["origin"] or ""
        if not origin.startswith(f"{STL}/") or not r["epochs"]:
            continue
        task = origin.split("/")[1]
        i = r["spec"]["tasks"].index(task)
        sign = 1 if HIGHER[metric_name(task)] else -1
        best = max(r["epochs"], key=lambda e: sign * e["val"][i])
        if task not in val or sign * best["val"][i] > sign * val[task][metric_name(task)]:
            val[task] = {metric_name(task): best["val"][i]}
            test[task] = {metric_name(task): best["test"][i]}
    return val, test


def per_task_change(values: list[float], tasks, baselines: dict) -> list[float]:
    """Relative improvement (%) of each task over its baseline, positive is better (paper C)."""
    return [delta_m(as_metrics([v], [t]), baselines, HIGHER, convention="task") for v, t in zip(values, tasks)]


def select_epoch(record: dict, base_val: dict) -> dict | None:
    """The epoch with the best validation delta-m in paper C's convention (``None`` when
    the run has no finite epoch)."""
    if not record["epochs"]:
        return None
    tasks = record["spec"]["tasks"]
    return max(record["epochs"],
               key=lambda e: delta_m(as_metrics(e["val"], tasks), base_val, HIGHER, convention="task"))
