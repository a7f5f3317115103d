"""GradVac: steer pairwise gradient similarities towards their running targets."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["GradVacState", "gradvac", "gradvac_weights"]


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(max(x, 0))`` with derivative 0, not ``inf * 0 = NaN``, where ``x <= 0`` (e.g. the
    ``sqrt(1 - phi^2)`` of a gradient and itself, ``phi = 1``, in a branch not taken)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def gradvac_weights(gramian: jax.Array | ScaledGramian, targets: jax.Array, key: jax.Array, *,
                    beta: float | jax.Array = 0.5) -> tuple[jax.Array, jax.Array]:
    """GradVac weights and the updated ``(T, T)`` targets, from a Gramian of any origin.
    See :func:`gradvac`."""
    check("beta", beta, lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    cf = cosine_form(gramian)
    c = cf.cos
    beta = as_float(beta)
    t = c.shape[0]
    perms = jax.vmap(lambda k: jax.random.permutation(k, t))(jax.random.split(key, t))

    def vaccinate(i, perm, row):
        # g_i' = |g_i| sum_k v_k u_k: cosines and the added multiples of u_j are scale-free
        def body(carry, j):
            v, row = carry
            norm_i = _safe_sqrt(v @ c @ v)
            live = (norm_i > 0) & cf.alive[j] & cf.alive[i]
            phi = jnp.clip(jnp.where(live, (v @ c[:, j]) / jnp.where(live, norm_i, 1.0), 0.0), -1.0, 1.0)
            target = row[j]
            sin_t = jnp.sqrt(jnp.maximum(1.0 - target**2, 1e-12))
            coef = norm_i * (target * _safe_sqrt(1.0 - phi**2) - phi * sin_t) / sin_t
            active = (j != i) & (phi < target) & live
            v = v + jnp.where(active, coef, 0.0) * jax.nn.one_hot(j, t, dtype=v.dtype)
            row = jnp.where((j != i) & (jnp.arange(t) == j), (1 - beta) * row + beta * phi, row)
            return (v, row), None

        (v, row), _ = jax.lax.scan(body, (jax.nn.one_hot(i, t, dtype=c.dtype), row), perm)
        return v, row

    v, rows = jax.vmap(vaccinate)(jnp.arange(t), perms, jnp.asarray(targets, jnp.float32))
    return cf.norms @ cf.from_units(v), rows


@method_state
class GradVacState(NamedTuple):
    """State of :func:`gradvac`."""

    targets: jax.Array     # f32[T, T]: the running similarity targets phi_hat (EMA)
    key: jax.Array         # PRNG key of the next projection orders
    weights: jax.Array     # f32[T]: the last weights
    skipped: jax.Array     # i32[]: non-finite steps skipped


@register("gradvac", "GradVac", "gramian", "Wang et al. 2021", weights=gradvac_weights, needs_num_tasks=True,
          random=True, scale="linear", permutation="distribution", one_task_identity=True)
def gradvac(beta: float = 0.5, *, seed: int = 0,
            num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradVac: steer pairwise gradient similarities towards their running targets.

    Wang et al. (2021). Update rule: for each task ``i`` start from ``g_i`` and, for every
    other task ``j`` in a random order, with ``phi = cos(g_i', g_j)`` and the target
    ``phi_hat = T[i, j]``: if ``phi < phi_hat``, add ``|g_i'| (phi_hat sqrt(1 - phi^2) - phi
    sqrt(1 - phi_hat^2)) / (|g_j| sqrt(1 - phi_hat^2)) g_j``; then ``T[i, j] <- (1 - beta)
    T[i, j] + beta phi``. ``d = sum_i g_i'``. Targets start at 0, so the first steps act
    like PCGrad. Whole-model granularity (LibMTL's ``GradVac_group_type=0``). Computed on
    the cosine matrix (every quantity is scale-free); the ``T x T`` targets and the PRNG key
    live in the state, so ``num_tasks`` is required.
    Args:
      beta: EMA rate of the targets, ``0.5`` (LibMTL; the paper uses 1e-2).
      seed: seed of the PRNG key of the projection orders.
      num_tasks: the number of tasks (required).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`GradVacState`; its
      public weighting is :func:`gradvac_weights`.

    References:
      - Wang et al. (2021). "Gradient Vaccine: Investigating and Improving Multi-task Optimization
        in Massively Multilingual Models"
    """
    check("beta", beta, lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    t = task_count(num_tasks, "gradvac", "its state holds the T x T similarity targets")

    def init_fn(params):
        del params
        return GradVacState(jnp.zeros((t, t), jnp.float32), jax.random.PRNGKey(seed),
                            initial_weights(t), no_skips())

    def weight_fn(gram, state, **_):
        key, sub = jax.random.split(state.key)
        w, targets = gradvac_weights(gram, state.targets, sub, beta=beta)
        return w, state._replace(targets=targets, key=key)

    return weighted_method(weight_fn, name="gradvac", num_tasks=t, init_fn=init_fn)
