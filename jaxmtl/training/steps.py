"""Generic jitted train and evaluation steps for any jaxmtl method and optax optimizer.

:func:`make_task_train_step` / :func:`make_task_eval_step` take the model's
apply function and the data set's tasks (:class:`jaxmtl.data.Task`: target,
loss, metrics), so any data set and model fit; :func:`make_train_step` /
:func:`make_eval_step` are the Multi-Fashion classification steps (the same
computation as the task steps with :func:`jaxmtl.data.classification_tasks`).

**Batch norm.** The task steps carry the model's Flax variables
(``{"params": ..., "batch_stats": ...}``). Each step runs the model *once* in
training mode on the whole batch, with every non-``params`` collection mutable:
every BatchNorm normalises with that batch's statistics, the same ones for all
tasks (as when training on the summed loss), and its running averages are
updated exactly once per step from that forward pass. The ``T`` per-task
gradients are ``T`` backward passes (VJPs) of that one forward pass
(:func:`jaxmtl.value_and_jacobian`): they differentiate through the batch
statistics but never re-run the forward pass, so the statistics are neither
updated ``T`` times nor computed from one task's view; a BatchNorm inside task
``t``'s head only ever sees task ``t``'s features. Evaluation uses the running
averages (``train=False``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl.data.tasks import Task, select
from jaxmtl.jacobians import value_and_jacobian
from jaxmtl.masking import Mask


def classification_losses(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy per task: logits ``(T, B, C)``, labels ``(B, T)`` -> ``f32[T]``."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels.T)
    return jnp.mean(ce, axis=1)


def make_train_step(apply_fn: Callable[..., Any], tx: optax.GradientTransformation, *,
                    shared: Mask = None, tasks: tuple[int, ...] | None = None,
                    task_losses: Callable[[Any, Any], jax.Array] = classification_losses):
    """A jitted ``step(params, opt_state, batch, rng) -> (params, opt_state, losses)``.

    ``apply_fn(variables, images, train=..., rngs=...)`` returns ``(T, B, ...)``
    outputs; ``tasks`` keeps a subset of them (single-task training: ``(t,)``).
    Per-task gradients come from :func:`jaxmtl.value_and_jacobian` with the
    ``shared`` mask (pair it with :func:`jaxmtl.partition` and the same mask).
    """
    keep = None if tasks is None else jnp.asarray(tasks)

    def loss_fn(params, batch, rng):
        out = apply_fn({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
        labels = batch["labels"]
        if keep is not None:
            out, labels = out[keep], labels[:, keep]
        return task_losses(out, labels)

    grads_fn = value_and_jacobian(loss_fn, shared=shared)

    @jax.jit
    def step(params, opt_state, batch, rng):
        losses, task_grads = grads_fn(params, batch, rng)
        updates, opt_state = tx.update(task_grads, opt_state, params, losses=losses)
        return optax.apply_updates(params, updates), opt_state, losses

    return step


def make_eval_step(apply_fn: Callable[..., Any]):
    """A jitted ``eval(params, batch) -> (loss_sum[T], correct[T])`` for classification."""

    @jax.jit
    def step(params, batch):
        logits = apply_fn({"params": params}, batch["image"], train=False)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32),
                                                             batch["labels"].T)
        correct = jnp.argmax(logits, axis=-1) == batch["labels"].T
        return jnp.sum(ce, axis=1), jnp.sum(correct, axis=1)

    return step


def evaluate(eval_step, params: Any, batch_iter) -> dict[str, list[float]]:
    """Per-task mean ``loss`` and ``accuracy`` over an iterable of batches."""
    loss = correct = None
    n = 0
    for batch in batch_iter:
        l, c = eval_step(params, batch)
        loss = l if loss is None else loss + l
        correct = c if correct is None else correct + c
        n += len(batch["labels"])
    if n == 0:
        raise ValueError("evaluate got no batches")
    return {"loss": (np.asarray(loss) / n).tolist(), "accuracy": (np.asarray(correct) / n).tolist()}


def task_losses(outputs: Any, batch: dict, tasks: Sequence[Task]) -> jax.Array:
    """``f32[T]``: each task's loss of its prediction in ``outputs`` against ``batch``."""
    return jnp.stack([task.loss(pred, *task.labels(batch))
                      for task, pred in zip(tasks, select(outputs, tasks))])


def split_variables(variables: dict) -> tuple[Any, dict]:
    """``(params, other collections)`` of Flax variables; raises ``ValueError`` without params."""
    if "params" not in variables:
        raise ValueError(f"variables need a 'params' collection, got {sorted(variables)}")
    return variables["params"], {k: v for k, v in variables.items() if k != "params"}


def training_losses(apply_fn: Callable[..., Any], tasks: Sequence[Task], input_key: str = "image"):
    """``loss_fn(params, state, batch, rng) -> (losses f32[T], state)``: the model in training mode
    (dropout key ``rng``, the non-``params`` collections ``state`` mutable and returned)."""
    tasks = tuple(tasks)

    def loss_fn(params, state, batch, rng):
        x = batch[input_key]
        if state:
            out, state = apply_fn({"params": params, **state}, x, train=True, rngs={"dropout": rng},
                                  mutable=list(state))
        else:
            out = apply_fn({"params": params}, x, train=True, rngs={"dropout": rng})
        return task_losses(out, batch, tasks), state

    return loss_fn


def make_task_train_step(apply_fn: Callable[..., Any], tx: optax.GradientTransformation,
                         tasks: Sequence[Task], *, shared: Mask = None, input_key: str = "image",
                         chunk_size: int | str | None = "auto",
                         probe: Callable[[Any, Any], Any] | None = None, previous_batch: bool = False,
                         lean_gramian: bool = False, fast_convolutions: bool | None = None):
    """A jitted ``step(variables, opt_state, batch, rng) -> (variables, opt_state, losses)``.

    ``tx`` also gets ``value=``, the summed task losses (for a loss-driven schedule such as
    ``optax.contrib.reduce_on_plateau``; methods ignore it).

    ``previous_batch=True``: the step is ``step(variables, opt_state, batch, rng,
    prev_batch)`` and also passes ``tx`` the losses of ``prev_batch`` at the current
    parameters (one more forward pass in training mode, a fresh dropout draw, batch
    statistics left as they are) as ``prev_batch_losses=``: FAMO's losses "after" the
    previous step on that step's own batch, as its official code computes them.

    ``probe(task_grads, params) -> pytree``, when given, is evaluated on the step's
    task gradients and the parameters the step starts from, and its value is returned
    as a fourth output (a statistic of the gradients at no extra backward pass).

    ``apply_fn(variables, batch[input_key], train=True, rngs={"dropout": rng})``
    returns one prediction per task (see :func:`jaxmtl.data.tasks.select`);
    ``tx`` acts on ``variables["params"]`` (``tx.init(variables["params"])``)
    and gets per-task gradients of the ``shared`` leaves (pair it with
    :func:`jaxmtl.partition` and the same mask). Other collections
    (``batch_stats``) follow the batch-norm rule of this module. On the CPU backend the
    model's ``nn.Conv`` layers are traced under :func:`jaxmtl.flax_gramian.fast_conv_backward`
    (same values, kernel gradients up to float rounding; a backward pass XLA's CPU backend
    runs about 8x faster in the chunked task passes on MultiLeNet; the input patches it keeps
    cost ``prod(window)`` times each convolution's input in memory: three 3 x 3 convolutions
    of 32 channels at 64 x 64, batch 8, T = 3, took 164 MiB of XLA temporaries against 68 MiB).
    ``fast_convolutions``: ``None`` (default) as just said, ``False`` keeps ``jax.lax``'s
    convolutions (less memory, slower on CPU), ``True`` uses them on any backend.

    ``lean_gramian=True`` (for ``tx`` built around a method of the registry's kind
    ``'gramian'``, alone or under :func:`jaxmtl.partition`, chained with optimisers of its
    update): the task gradients come from :func:`jaxmtl.flax_gramian.lean_jacobian`, so
    the Dense layers that its flop count routes through their activations have no
    per-task gradients; ``tx`` gets their Gramian as ``gramian=`` and their update from
    one backward pass as ``combination=``. Not with ``probe`` (it reads the task gradients).
    """
    loss_fn = training_losses(apply_fn, tasks, input_key)
    if lean_gramian and probe is not None:
        raise ValueError("lean_gramian leaves some task gradients unformed: a probe needs them all")
    if lean_gramian:
        from jaxmtl.flax_gramian import lean_jacobian

        lean_fn = lean_jacobian(loss_fn, has_aux=True, shared=shared, chunk_size=chunk_size,
                                fast_convolutions=fast_convolutions)

        def grads_fn(params, state, batch, rng):
            value, lean = lean_fn(params, state, batch, rng)
            extra = dict(gramian=lean.gramian, combination=lean.combination) if lean.routed else {}
            return value, lean.task_grads, extra
    else:
        from jaxmtl.flax_gramian import fast_conv_backward

        jacobian_fn = value_and_jacobian(loss_fn, has_aux=True, shared=shared, chunk_size=chunk_size)

        def grads_fn(params, state, batch, rng):
            with fast_conv_backward(fast_convolutions):   # a backward pass that stays fast in the chunked passes
                return *jacobian_fn(params, state, batch, rng), {}

    @jax.jit
    def step(variables, opt_state, batch, rng, prev_batch=None):
        params, state = split_variables(variables)
        (losses, new_state), task_grads, extra = grads_fn(params, state, batch, rng)
        if previous_batch:
            extra["prev_batch_losses"] = loss_fn(params, state, prev_batch, jax.random.fold_in(rng, 1))[0]
        state = new_state
        updates, opt_state = tx.update(task_grads, opt_state, params, losses=losses, value=jnp.sum(losses), **extra)
        out = {"params": optax.apply_updates(params, updates), **state}, opt_state, losses
        return out if probe is None else (*out, probe(task_grads, params))

    return step


def make_task_eval_step(apply_fn: Callable[..., Any], tasks: Sequence[Task], *, input_key: str = "image"):
    """A jitted ``eval(variables, batch) -> (losses f32[T], stats)``: ``stats[t][k]`` holds the
    additive statistics of metric ``k`` of task ``t`` (sum them with :func:`evaluate_tasks`)."""
    tasks = tuple(tasks)

    @jax.jit
    def step(variables, batch):
        out = apply_fn(variables, batch[input_key], train=False)
        stats = [tuple(m.stats(pred, *task.labels(batch)) for m in task.metrics)
                 for task, pred in zip(tasks, select(out, tasks))]
        return task_losses(out, batch, tasks), stats

    return step


def evaluate_tasks(eval_step, variables: Any, batch_iter, tasks: Sequence[Task],
                   input_key: str = "image") -> dict[str, dict[str, float]]:
    """``{task: {"loss": mean loss, metric: value, ...}}`` over an iterable of batches.

    Metrics are computed from statistics summed over all batches (mIoU from one
    confusion matrix of the split); the loss is the batch losses' mean weighted
    by batch size.
    """
    loss, stats, n = 0.0, None, 0
    for batch in batch_iter:
        b = len(jax.tree.leaves(batch[input_key])[0])
        l, s = eval_step(variables, batch)
        loss = loss + np.asarray(l, np.float64) * b
        s = jax.tree.map(lambda x: np.asarray(x, np.float64), s)
        stats = s if stats is None else jax.tree.map(np.add, stats, s)
        n += b
    if n == 0:
        raise ValueError("evaluate_tasks got no batches")
    out = {}
    for t, task in enumerate(tasks):
        out[task.name] = {"loss": float(loss[t] / n)}
        out[task.name].update({m.name: m.value(st) for m, st in zip(task.metrics, stats[t])})
    return out
