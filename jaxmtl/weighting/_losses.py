"""Helpers shared by the loss weightings."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import task_count
from jaxmtl.protocol import weighted_method

TINY = 1e-12  # floor on losses before dividing by or taking the log of them
WINDOW = 40    # what an inner optimiser gets has magnitudes within [2^-WINDOW, 2^WINDOW]


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


def into_window(mantissa: jax.Array, exponent: jax.Array | int = 0) -> jax.Array:
    """``mantissa * 2**exponent`` (``exponent`` an integer), divided by the power of two that
    brings its largest magnitude into ``[2^-WINDOW, 2^WINDOW]`` when it lies outside.

    For the gradient given to the inner optimiser of learned loss weights: Adam squares it
    (``2^80`` stays finite in float32 where a gradient of ``1e20`` would overflow), and
    Adam's step does not change when its gradient is rescaled (up to its ``eps``). Values
    inside the window are returned exactly as ``mantissa * 2**exponent``; ``mantissa`` need
    not be representable at its true magnitude (``2**exponent`` may exceed float32).
    """
    mantissa = jnp.asarray(mantissa, jnp.float32)
    top = jnp.max(jnp.abs(mantissa))
    ok = jnp.isfinite(top) & (top > 0)
    level = jnp.log2(jnp.where(ok, top, 1.0)) + exponent       # log2 of the true magnitude
    shift = jnp.where(ok, jnp.round(jnp.clip(level, -WINDOW, WINDOW) - level), 0.0)
    return jnp.ldexp(mantissa, (exponent + shift).astype(jnp.int32))


def split_scale(tree: Any) -> tuple[Any, jax.Array]:
    """``(tree / 2**e, e)``: float32 leaves divided by the power of two ``2**e`` of their largest
    magnitude (exact; ``e = 0`` for an all-zero or non-finite tree)."""
    leaves = [jnp.asarray(x).astype(jnp.float32) for x in jax.tree.leaves(tree)]
    top = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))
    _, e = jnp.frexp(jnp.where(jnp.isfinite(top) & (top > 0), top, 1.0))
    treedef = jax.tree.structure(tree)
    return jax.tree.unflatten(treedef, [jnp.ldexp(x, -e) for x in leaves]), e
