"""Generic jitted train and evaluation steps for any jaxmtl method and optax optimizer."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl.jacobian import value_and_jacobian
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
