"""DB-MTL: dual balancing of loss scales (log losses) and gradient magnitudes."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators._buffers import cast_like, check_buffer, scale_rows, stacked_zeros
from jaxmtl.gramians import combine, task_grad_norms
from jaxmtl.protocol import method, method_state, no_skips
from jaxmtl.registry import register
from jaxmtl.weighting._losses import positive

__all__ = ["DBMTLState", "db_mtl"]


@method_state
class DBMTLState(NamedTuple):
    """State of :func:`db_mtl`."""

    tracked: Any            # the tracked log-loss gradients m_t: leaves f32[T, *shape]
    step: jax.Array         # i32[]: updates so far
    weights: jax.Array      # f32[T]: max_s |m_s| / |m_t|, the weights of the tracked gradients
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("db_mtl", "DB-MTL", "gradient", "Lin et al. 2023", needs_losses=True, needs_num_tasks=True,
          task_scale="invariant")
def db_mtl(beta: float = 0.9, *, beta_sigma: float = 0.5,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """DB-MTL: dual balancing of loss scales (log losses) and gradient magnitudes.

    Lin et al. (2023). Update rule at step ``k``: the gradients of ``log L_t`` (``g_t /
    L_t``) are tracked by ``m_t <- lg_t + beta_k (m_t - lg_t)``, ``beta_k = beta /
    k^beta_sigma``; each is rescaled to the largest norm: ``d = sum_t (max_s |m_s| / |m_t|)
    m_t``. Losses are floored at 1e-12 and the norm floor is relative (``1e-8 * max_s
    |m_s|``), instead of LibMTL's absolute ``+1e-8`` on both, so the update is invariant to
    a positive rescaling of each task's loss down to losses of ~1e-8.

    Needs ``losses``; keeps one tracked gradient per task in the state, so
    ``num_tasks`` is required and ``init`` needs the parameters.

    Args:
      beta: tracking rate, ``0.9``; ``beta_sigma``: its decay exponent, ``0.5``
        (LibMTL's defaults).
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`DBMTLState`.

    References:
      - Lin et al. (2023). "Dual-Balancing for Multi-Task Learning"
    """
    check("beta", beta, lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    check("beta_sigma", beta_sigma, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "db_mtl", "its state tracks one gradient per task")

    def init_fn(params):
        return DBMTLState(stacked_zeros(params, t, "db_mtl"), jnp.zeros((), jnp.int32),
                          jnp.ones((t,), jnp.float32), no_skips())

    def update_fn(task_grads, state, *, losses, **_):
        check_buffer("db_mtl", state.tracked, task_grads)
        step = state.step + 1
        b = as_float(beta) / step.astype(jnp.float32) ** as_float(beta_sigma)
        log_grads = scale_rows(1.0 / positive(losses), task_grads)
        m = jax.tree.map(lambda m, lg: lg + b * (m - lg), state.tracked, log_grads)
        norms = task_grad_norms(m)
        top = jnp.max(norms)
        w = jnp.where(top > 0, top / (norms + 1e-8 * top + 1e-30), 1.0)
        return cast_like(combine(w, m), task_grads), DBMTLState(m, step, w, state.skipped)

    return method(update_fn, init_fn, name="db_mtl", num_tasks=t, needs_losses=True)
