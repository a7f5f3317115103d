"""Helpers shared by the loss weightings."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import task_count
from jaxmtl.protocol import weighted_method

TINY = 1e-12  # floor on losses before dividing by or taking the log of them


def positive(losses: jax.Array) -> jax.Array:
    """Losses floored at :data:`TINY` (a loss of 0 would give an infinite weight)."""
    return jnp.maximum(jnp.abs(losses), TINY)


def inverse_loss_weights(losses: jax.Array) -> jax.Array:
    """``1 / L_t``, the weights of the sum of log losses (losses floored at 1e-12): SI's
    and UW-O's."""
    return 1.0 / positive(losses)


def loss_weighting(weights_from_losses: Callable[[jax.Array], jax.Array], *, name: str,
                   num_tasks: Any = None) -> optax.GradientTransformationExtraArgs:
    """A stateless method whose weights are a function of the losses only."""

    def weight_fn(gram, state, *, losses, **_):
        del gram
        return weights_from_losses(losses), state

    return weighted_method(weight_fn, name=name, num_tasks=task_count(num_tasks, name),
                           uses_gramian=False, needs_losses=True)


def inner_optimizer(optimizer: optax.GradientTransformation | None, lr: Any) -> optax.GradientTransformation:
    """The optimiser of learned loss weights: ``optimizer`` or ``adam(lr)``."""
    return optax.adam(lr) if optimizer is None else optimizer
