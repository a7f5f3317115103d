"""MoCo: multi-objective gradient with bias correction by tracking."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators._buffers import cast_like, check_buffer, scale_rows, stacked_zeros
from jaxmtl.gramians import combine, scaled_gramian, task_grad_norms
from jaxmtl.protocol import initial_weights, method, method_state, no_skips
from jaxmtl.registry import register

__all__ = ["MoCoState", "moco"]


@method_state
class MoCoState(NamedTuple):
    """State of :func:`moco`."""

    tracked: Any            # the tracked gradients y_t: params' structure, leaves f32[T, *shape]
    step: jax.Array         # i32[]: updates so far
    weights: jax.Array      # f32[T]: lambda, the weights of the tracked gradients
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("moco", "MoCo", "gradient", "Fernando et al. 2023", needs_losses=True, needs_num_tasks=True)
def moco(beta: float = 0.5, *, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5,
         rho: float = 0.0, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """MoCo: multi-objective gradient with bias correction by tracking.

    Fernando et al. (2023). Update rule at step ``k`` (LibMTL's form): each task gradient is
    rescaled to norm ``L_t`` (``h_t = L_t g_t / (|g_t| + 1e-8)``), tracked by ``y_t <- y_t -
    beta_k (y_t - h_t)`` with ``beta_k = beta / k^beta_sigma``; the weights follow ``lambda
    <- softmax(lambda - gamma_k (Y Y^T + rho I) lambda)``, ``gamma_k = gamma /
    k^gamma_sigma``; ``d = Y^T lambda``.

    Needs ``losses``; keeps the ``T`` tracked gradients in the state (``T`` times
    the parameters' memory), so ``num_tasks`` is required and ``init`` needs the
    parameters. ``state.weights`` records ``lambda`` (the weights of ``Y``, not
    of the current Jacobian).

    Args:
      beta: tracking rate, ``0.5``; ``beta_sigma``: its decay exponent, ``0.5``.
      gamma: step size of the weights, ``0.1``; ``gamma_sigma``: its decay exponent, ``0.5``.
      rho: ridge of the weights' objective, ``0.0``. (Defaults: LibMTL.)
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`MoCoState`.

    References:
      - Fernando et al. (2023). "Mitigating Gradient Bias in Multi-objective Learning: A Provably
        Convergent Approach"
    """
    for name, value in (("beta", beta), ("beta_sigma", beta_sigma), ("gamma", gamma),
                        ("gamma_sigma", gamma_sigma), ("rho", rho)):
        check(name, value, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "moco", "its state tracks one gradient per task")

    def init_fn(params):
        return MoCoState(stacked_zeros(params, t, "moco"), jnp.zeros((), jnp.int32),
                         initial_weights(t), no_skips())

    def update_fn(task_grads, state, *, losses, **_):
        check_buffer("moco", state.tracked, task_grads)
        step = state.step + 1
        k = step.astype(jnp.float32)
        norms = task_grad_norms(task_grads)
        h = scale_rows(losses / (norms + 1e-8), task_grads)
        b = as_float(beta) / k ** as_float(beta_sigma)
        y = jax.tree.map(lambda y, h: y - b * (y - h), state.tracked, h)
        gy, s = scaled_gramian(y)
        s2 = jnp.minimum(s**2, jnp.finfo(jnp.float32).max)  # no 0 * inf for losses near 1e30
        lam = state.weights
        grad = jnp.clip((gy @ lam) * s2 + as_float(rho) * lam, -1e30, 1e30)
        lam = jax.nn.softmax(lam - as_float(gamma) / k ** as_float(gamma_sigma) * grad)
        return cast_like(combine(lam, y), task_grads), MoCoState(y, step, lam, state.skipped)

    return method(update_fn, init_fn, name="moco", num_tasks=t, needs_losses=True)
