"""Helpers shared by the loss weightings."""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

from jaxmtl.method import weighted_method

TINY = 1e-12  # floor on losses before dividing by or taking the log of them


def positive(losses):
    """Losses floored at :data:`TINY` (a loss of 0 would give an infinite weight)."""
    return jnp.maximum(jnp.abs(losses), TINY)


def loss_weighting(weights_from_losses: Callable, *, name: str,
                   num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """A stateless method whose weights are a function of the losses only."""

    def weight_fn(g, inner, *, losses, **_):
        return weights_from_losses(losses), inner

    return weighted_method(weight_fn, name=name, num_tasks=num_tasks, uses_gramian=False,
                           needs_losses=True)


def inner_optimizer(optimizer: optax.GradientTransformation | None, lr: float) -> optax.GradientTransformation:
    """The optimiser of learned loss weights: ``optimizer`` or ``adam(lr)``."""
    return optax.adam(lr) if optimizer is None else optimizer
