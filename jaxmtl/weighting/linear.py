"""Fixed linear scalarisation: equal weighting (EW), unit scalarisation, fixed weights."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmtl._checks import concrete, one_of, task_count, task_vector
from jaxmtl.protocol import WeightsState, initial_weights, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["linear"]

REDUCTIONS = ("sum", "mean")


@register("ew", "EW", "loss", "Kurin et al. 2022; Elich et al. 2023", scale="linear", one_task_identity=True,
          aliases=("Sum",))
@register("mean", "Unit. Scal.", "loss", "Kurin et al. 2022; Gama & Grassi 2025",
          kwargs={"reduction": "mean"}, scale="linear", one_task_identity=True)
def linear(weights: Sequence[float] | jax.Array | None = None, *, reduction: str = "sum",
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Fixed task weights: EW, unit scalarisation, or any fixed weighting.

    Update rule: ``d = sum_t w_t g_t`` (``reduction='sum'``) or
    ``(1/T) sum_t w_t g_t`` (``'mean'``), with ``w_t = 1`` by default. ``linear()``
    is EW, the sum of the task losses (Elich et al. 2023); ``linear(reduction='mean')``
    is the "unitary scalarisation" of Kurin et al. (2022) and Gama & Grassi
    (2025), the mean of the task losses; ``linear(weights=...)`` uses fixed
    weights (e.g. the mean weights of a specialised optimiser's run, Gama &
    Grassi section 5). Linear in the gradients; invariant to permuting the
    tasks together with their weights.

    Args:
      weights: one non-negative, finite weight per task (default: all ones).
      reduction: ``'sum'`` (default) or ``'mean'`` (divides by ``T``).
      num_tasks: when given, the task count is checked; the weights are recorded
        in ``state.weights`` when ``num_tasks`` or ``weights`` is given.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      - Kurin et al. (2022). "In Defense of the Unitary Scalarization for Deep Multi-Task Learning"
      - Elich, Kirchdorfer, Köhler & Schott (2023). "Examining Common Paradigms in Multi-Task Learning"
        (arXiv 2311.04698)
      - Gama & Grassi (2025). "Uniform Loss vs. Specialized Optimization: A Comparative Analysis in
        Multi-Task Learning" (arXiv 2505.10347)
    """
    one_of("reduction", reduction, REDUCTIONS)
    t = task_count(num_tasks, "linear")
    record = t
    if weights is not None:
        shape = np.shape(weights) if concrete(weights) is not None else weights.shape
        v = concrete(weights)
        if len(shape) != 1 or shape[0] == 0 or (
                v is not None and not (np.all(np.isfinite(v)) and np.all(v >= 0))):
            raise ValueError(f"weights must be a non-empty 1-D sequence of non-negative, finite "
                             f"numbers, got {weights!r}")
        record = shape[0]
        if t is not None and t != record:
            raise ValueError(f"{record} weights given for num_tasks={t}")

    def init_fn(params):
        del params
        return WeightsState(initial_weights(record), no_skips())

    def weight_fn(gram, state, *, t, **_):
        del gram
        w = jnp.ones((t,), jnp.float32) if weights is None else task_vector("weights", weights, t)
        return (w / t if reduction == "mean" else w), state

    return weighted_method(weight_fn, name="linear", num_tasks=t, init_fn=init_fn, uses_gramian=False)
