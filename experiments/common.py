"""Shared pieces of the experiment modules: registries, one training run, reports."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl
from jaxmtl.data import MultiFashion, batches
from jaxmtl.models import MultiLeNet, shared_mask, task_of
from jaxmtl.partition import recorded_weights
from jaxmtl.training import evaluate, make_eval_step, make_train_step

_BY_FACTORY = ["mgda", "pcgrad", "upgrad", "dualproj", "imtl_g", "aligned_mtl", "config", "cagrad",
               "nash_mtl", "fairgrad", "graddrop", "gradvac", "moco", "db_mtl", "excess_mtl",
               "uncertainty", "uw_optimal", "uw_so", "dwa", "rlw", "gradnorm", "famo", "imtl_l",
               "geometric_mean", "stch", "scale_invariant"]
METHODS: dict[str, Callable[[int], optax.GradientTransformation]] = {
    "ew": lambda t: jaxmtl.linear(num_tasks=t),
    "mean": lambda t: jaxmtl.linear(reduction="mean", num_tasks=t),
    "rlw_dirichlet": lambda t: jaxmtl.rlw("dirichlet", num_tasks=t),
    **{name: (lambda t, f=getattr(jaxmtl, name): f(num_tasks=t)) for name in _BY_FACTORY},
}
"""MTL methods by name (every jaxmtl method but SDMGrad and MoDo, which need two extra
batches per step); each factory takes the number of tasks."""

LOSS_WEIGHTINGS = {"ew", "mean", "rlw", "rlw_dirichlet", "uncertainty", "uw_optimal", "uw_so", "dwa",
                   "gradnorm", "famo", "imtl_l", "geometric_mean", "stch", "scale_invariant"}
"""Methods that minimise ``sum_t w_t L_t``: their heads are weighted too (``task_of``); gradient
aggregators give the heads their plain gradient, as LibMTL does."""

OPTIMIZERS = jaxmtl.optim.OPTIMIZERS
"""Optimiser names accepted by :func:`jaxmtl.make_optimizer`."""


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``method='stl'`` trains task ``stl_task`` alone."""

    method: str
    optimizer: str
    lr: float
    seed: int
    epochs: int
    batch_size: int
    data: dict = field(default_factory=dict)
    stl_task: int | None = None

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True)
        return f"{self.label}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    @property
    def label(self) -> str:
        name = self.method if self.stl_task is None else f"stl{self.stl_task}"
        return f"{name}/{self.optimizer}/lr{self.lr:g}/s{self.seed}"


def train_run(spec: RunSpec, data: MultiFashion, *, progress=None) -> dict[str, Any]:
    """Trains one run, evaluating on validation and test after every epoch.

    Returns a JSON-serialisable record: the spec, per-epoch train losses and
    per-task val/test loss and accuracy, the median step time (compilation
    excluded) and the mean task weights of each epoch when the method records them.
    """
    num_tasks = len(data.tasks)
    model = MultiLeNet(num_tasks=num_tasks, num_classes=data.num_classes)
    key = jax.random.PRNGKey(spec.seed)
    init_key, key = jax.random.split(key)
    params = model.init(init_key, jnp.zeros((1, *data.train.images.shape[1:]), jnp.float32))["params"]
    if spec.stl_task is None:
        owners = task_of if spec.method in LOSS_WEIGHTINGS else None
        tasks, method, t = None, METHODS[spec.method](num_tasks), num_tasks
    else:
        tasks, method, t, owners = (spec.stl_task,), jaxmtl.linear(num_tasks=1), 1, None
    tx = jaxmtl.make_optimizer(spec.optimizer, spec.lr, method, num_tasks=t, shared=shared_mask,
                               task_of=owners)
    opt_state = tx.init(params)
    step = make_train_step(model.apply, tx, shared=shared_mask, tasks=tasks)
    eval_step = make_eval_step(model.apply)
    rng = np.random.default_rng(spec.seed)
    epochs, step_times = [], []
    for epoch in range(spec.epochs):
        losses, weights = [], []
        for batch in batches(data.train, spec.batch_size, rng):
            key, sub = jax.random.split(key)
            start = time.perf_counter()
            params, opt_state, loss = step(params, opt_state, batch, sub)
            loss = jax.block_until_ready(loss)
            step_times.append(time.perf_counter() - start)
            losses.append(np.asarray(loss))
            w = recorded_weights(opt_state)
            if w is not None:
                weights.append(np.asarray(w))
            if progress is not None:
                progress.update(1)
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"{spec.label}: non-finite training loss in epoch {epoch}")
        record = {"epoch": epoch + 1, "train_loss": np.mean(losses, axis=0).tolist(),
                  "val": evaluate(eval_step, params, batches(data.val, 512, drop_last=False)),
                  "test": evaluate(eval_step, params, batches(data.test, 512, drop_last=False))}
        if weights:
            record["weights"] = np.mean(weights, axis=0).tolist()
        epochs.append(record)
    return {"key": spec.key, "label": spec.label, "spec": asdict(spec), "tasks": list(data.tasks),
            "epochs": epochs, "step_time_s": float(np.median(step_times[1:] or step_times)),
            "backend": jax.default_backend()}


def steps_per_run(spec: RunSpec, data: MultiFashion) -> int:
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
