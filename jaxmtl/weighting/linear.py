"""Fixed linear scalarisation: equal weighting (EW), unit scalarisation, fixed weights.

Update rule: ``d = sum_t w_t g_t`` (``reduction='sum'``) or ``(1/T) sum_t w_t g_t``
(``reduction='mean'``), with ``w_t = 1`` by default. ``linear()`` is EW, the
sum of the task losses (Elich et al. 2023); ``linear(reduction='mean')`` is the
"unitary scalarisation" of Kurin et al. (2022) and Gama & Grassi (2025), the
mean of the task losses; ``linear(weights=...)`` uses fixed weights (e.g. the
mean weights of a specialised optimiser's run, Gama & Grassi section 5).
The update is linear in the gradients and invariant to permuting the tasks
together with their weights.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl.method import weighted_method

_REDUCTIONS = ("sum", "mean")


def linear(weights: Sequence[float] | None = None, reduction: str = "sum", *,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Fixed task weights as an optax transformation (see the module docstring).

    Args:
      weights: one non-negative, finite weight per task (default: all ones).
      reduction: ``'sum'`` or ``'mean'`` (divides by ``T``).
      num_tasks: task count to check (implied by ``weights`` when given); also
        records the weights in ``state.weights``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    fixed = None
    if weights is not None:
        fixed = np.asarray(weights, np.float32)
        if fixed.ndim != 1 or fixed.size == 0:
            raise ValueError(f"weights must be a non-empty 1-D sequence, got shape {fixed.shape}")
        if not np.all(np.isfinite(fixed)):
            raise ValueError("weights must be finite")
        if num_tasks is not None and num_tasks != fixed.size:
            raise ValueError(f"{fixed.size} weights given for num_tasks={num_tasks}")
        num_tasks = fixed.size

    def weight_fn(g, inner, *, t, **_):
        w = jnp.ones((t,), jnp.float32) if fixed is None else jnp.asarray(fixed)
        return (w / t if reduction == "mean" else w), inner

    return weighted_method(weight_fn, name="linear", num_tasks=num_tasks, uses_gramian=False)
