"""ExcessMTL: weight the tasks by their estimated excess risk."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators._buffers import check_buffer, stacked_zeros
from jaxmtl.gramians import combine
from jaxmtl.protocol import method, method_state, no_skips
from jaxmtl.registry import register

__all__ = ["ExcessMTLState", "excess_mtl"]


_EPS_ROOT = math.sqrt(1e-7)   # the root of the official 1e-7 under the square root


def _hypot(a: jax.Array, b: jax.Array | float) -> jax.Array:
    """``sqrt(a^2 + b^2)`` for ``a, b >= 0`` without overflow or underflow of the squares."""
    m = jnp.maximum(a, b)
    safe = jnp.where(m > 0, m, 1.0)
    return jnp.where(m > 0, safe * jnp.sqrt(jnp.square(a / safe) + jnp.square(b / safe)), 0.0)


@method_state
class ExcessMTLState(NamedTuple):
    """State of :func:`excess_mtl`."""

    root_sq_sum: Any        # sqrt(H_t), H_t the accumulated squared gradients: leaves f32[T, *shape]
    reference: jax.Array    # f32[T]: the first step's excess-risk estimates r0
    started: jax.Array      # bool[]: whether r0 is set
    weights: jax.Array      # f32[T]: the task weights (sum T)
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("excess_mtl", "ExcessMTL", "gradient", "He et al. 2024", needs_num_tasks=True, scale="linear",
          one_task_identity=True)
def excess_mtl(robust_step_size: float = 1e-2, *,
               num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """ExcessMTL: weight the tasks by their estimated excess risk.

    He et al. (2024). Update rule (the official code, also in LibMTL): accumulate ``H_t +=
    g_t^2`` (AdaGrad-style diagonal), estimate each task's excess risk ``r_t = g_t^T
    diag(1/sqrt(H_t + 1e-7)) g_t``; the first step stores ``r_t`` as the reference ``r0_t``
    and keeps the weights at 1; later steps update ``w_t <- w_t exp(eta r_t / r0_t)``
    renormalised to sum to ``T``; ``d = sum_t w_t g_t``.

    Keeps ``sqrt(H)`` (``T`` times the parameters' memory) in the state, so ``num_tasks``
    is required and ``init`` needs the parameters. It is accumulated as a root sum of
    squares (``sqrt(R^2 + g^2)`` with the larger term factored out) and the risk as
    ``(|g| / sqrt(R^2 + 1e-7)) |g|``: no square of a gradient is formed, so gradients
    up to float32's largest give finite states and updates.

    Args:
      robust_step_size: ``eta``, ``1e-2``.
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`ExcessMTLState`.

    References:
      - He et al. (2024). "Robust Multi-Task Learning with Excess Risks"
    """
    check("robust_step_size", robust_step_size, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "excess_mtl", "its state accumulates squared gradients per task")

    def init_fn(params):
        return ExcessMTLState(stacked_zeros(params, t, "excess_mtl"), jnp.ones((t,), jnp.float32),
                              jnp.array(False), jnp.ones((t,), jnp.float32), no_skips())

    def update_fn(task_grads, state, *, t, **_):
        check_buffer("excess_mtl", state.root_sq_sum, task_grads)
        root = jax.tree.map(lambda r, g: _hypot(r, jnp.abs(g.astype(jnp.float32))), state.root_sq_sum,
                            task_grads)
        # g^2 / sqrt(H + 1e-7) as (|g| / sqrt(R^2 + 1e-7)) |g|: no square of g is formed
        risk = sum(jnp.sum(jnp.reshape(jnp.abs(g.astype(jnp.float32)) / _hypot(r, _EPS_ROOT)
                                       * jnp.abs(g.astype(jnp.float32)), (t, -1)), axis=1)
                   for g, r in zip(jax.tree.leaves(task_grads), jax.tree.leaves(root)))
        risk = jnp.minimum(risk, jnp.finfo(jnp.float32).max)
        r0 = jnp.where(state.started, state.reference, risk)
        ratio = jnp.where(r0 > 0, risk / jnp.where(r0 > 0, r0, 1.0), 0.0)
        w = state.weights * jnp.exp(jnp.clip(as_float(robust_step_size) * ratio, -50.0, 50.0))
        w = jnp.where(state.started, w / jnp.sum(w) * t, state.weights)
        return combine(w, task_grads), ExcessMTLState(root, r0, jnp.array(True), w, state.skipped)

    return method(update_fn, init_fn, name="excess_mtl", num_tasks=t)
