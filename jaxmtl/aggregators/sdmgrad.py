"""SDMGrad: stochastic direction-oriented multi-objective gradient descent."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators._extra_batches import extra_cross_gramian
from jaxmtl.gramians import combine
from jaxmtl.protocol import WeightsState, initial_weights, method, no_skips
from jaxmtl.registry import register
from jaxmtl.solvers import project_simplex

__all__ = ["sdmgrad"]


@register("sdmgrad", "SDMGrad", "gradient", "Xiao et al. 2023", needs_num_tasks=True, extra_batches=2)
def sdmgrad(lamda: float = 0.3, *, num_iters: int = 20, lr: float = 5.0, momentum: float = 0.5,
            num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """SDMGrad: stochastic direction-oriented multi-objective gradient descent.

    Xiao et al. (2023). Update rule (official code, as in LibMTL): with two independent
    batches' Jacobians ``J_b, J_c``, ``M = J_b J_c^T`` divided by the squared mean of the
    square roots of its (clipped) diagonal, the weights ``w`` (simplex, kept in the state,
    starting at ``1/T``) take ``num_iters`` projected SGD steps (``lr``, ``momentum``;
    LibMTL's 5 and 0.5, the official code's lr is 10) on ``M w + lamda M 1/T``; the update
    uses a third batch ``J_a`` (``task_grads``): ``d = J_a^T (w + lamda/T) / (1 + lamda)``.

    Extra batches: pass ``extra_task_grads=(task_grads_b, task_grads_c)`` with the
    stacked gradients of two more independent batches (a ``ValueError`` says so
    when they are missing). ``state.weights`` records ``w`` (the simplex iterate,
    not the applied ``(w + lamda/T) / (1 + lamda)``).

    Args:
      lamda: pull towards the mean gradient, ``0.3``.
      num_iters: projected SGD steps per update, ``20``.
      lr: their learning rate, ``5.0``; ``momentum``: their momentum, ``0.5`` (LibMTL). At
        ``lr = 5`` the 20 heavy-ball steps amplify float32 round-off to ~3e-4 in the weights.
      num_tasks: the number of tasks (required: the weights are state).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`jaxmtl.protocol.WeightsState`.

    References:
      - Xiao et al. (2023). "Direction-oriented Multi-objective Learning: Simple and Provable
        Stochastic Algorithms"
    """
    check("lamda", lamda, lambda v: v >= 0, "non-negative")
    check("num_iters", num_iters, lambda v: v >= 1, "a positive integer")
    check("lr", lr, lambda v: v > 0, "positive")
    check("momentum", momentum, lambda v: (v >= 0) & (v < 1), "in [0, 1)")
    t = task_count(num_tasks, "sdmgrad", "its weights are state")

    def init_fn(params):
        del params
        return WeightsState(initial_weights(t), no_skips())

    def update_fn(task_grads, state, *, t, extra, **_):
        m, _ = extra_cross_gramian(extra, t, "sdmgrad")
        scale2 = jnp.mean(jnp.sqrt(jnp.maximum(jnp.diag(m), 0.0))) ** 2
        m = m / jnp.where(scale2 > 0, scale2, 1.0)
        lam = as_float(lamda)
        pull = lam * jnp.mean(m, axis=1)

        def sgd(_, carry):
            w, buf = carry
            buf = as_float(momentum) * buf + (m @ w + pull)
            return project_simplex(w - as_float(lr) * buf).astype(w.dtype), buf

        w, _ = jax.lax.fori_loop(0, num_iters, sgd, (state.weights, jnp.zeros((t,), jnp.float32)))
        weights = (w + lam / t) / (1.0 + lam)
        return combine(weights, task_grads), state._replace(weights=w)

    return method(update_fn, init_fn, name="sdmgrad", num_tasks=t)
