"""RLW: random loss weighting."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, one_of, task_count
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["RLWState", "rlw"]

DISTRIBUTIONS = ("normal", "dirichlet")


@method_state
class RLWState(NamedTuple):
    """State of :func:`rlw`."""

    key: jax.Array                  # PRNG key of the next weights
    weights: jax.Array | None       # f32[T]: the last weights (None without num_tasks)
    skipped: jax.Array              # i32[]: non-finite steps skipped


@register("rlw", "RLW", "loss", "Lin et al. 2022", random=True, permutation="distribution",
          one_task_identity=True, aliases=("Random",))
@register("rlw_dirichlet", "RLW (Dirichlet)", "loss", "Lin et al. 2022", kwargs={"distribution": "dirichlet"},
          random=True, permutation="distribution", one_task_identity=True)
def rlw(distribution: str = "normal", *, alpha: float = 1.0, seed: int = 0,
        num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """RLW: random loss weighting.

    Lin et al. (2022). Update rule: fresh weights every step, ``w = softmax(z)`` with ``z ~
    N(0, I)`` (``distribution='normal'``, LibMTL's default) or ``w ~ Dirichlet(alpha 1)``
    (``'dirichlet'``); ``d = sum_t w_t g_t``. Runs that should differ (seeds of an
    experiment) need different ``seed``s.
    Args:
      distribution: ``'normal'`` (default) or ``'dirichlet'``.
      alpha: the Dirichlet concentration, ``1.0`` (uniform on the simplex).
      seed: seed of the PRNG key kept in the state.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with an :class:`RLWState`.

    References:
      - Lin et al. (2022). "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-
        Task Learning"
    """
    one_of("distribution", distribution, DISTRIBUTIONS)
    check("alpha", alpha, lambda v: v > 0, "positive")
    t = task_count(num_tasks, "rlw")

    def init_fn(params):
        del params
        return RLWState(jax.random.PRNGKey(seed), initial_weights(t), no_skips())

    def weight_fn(gram, state, *, t, **_):
        del gram
        key, sub = jax.random.split(state.key)
        if distribution == "normal":
            w = jax.nn.softmax(jax.random.normal(sub, (t,)))
        else:
            w = jax.random.dirichlet(sub, jnp.full((t,), as_float(alpha)))
        return w, state._replace(key=key)

    return weighted_method(weight_fn, name="rlw", num_tasks=t, init_fn=init_fn, uses_gramian=False)
