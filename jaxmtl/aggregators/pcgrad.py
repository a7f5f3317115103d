"""PCGrad: project each task gradient off the gradients it conflicts with."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import one_of, task_count
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["PCGradState", "pcgrad", "pcgrad_weights"]

REDUCTIONS = ("sum", "mean")


def pcgrad_weights(gramian: jax.Array | ScaledGramian, key: jax.Array, *,
                   reduction: str = "sum") -> jax.Array:
    """PCGrad weights from a Gramian of any origin; ``key`` draws the projection orders.
    See :func:`pcgrad`."""
    one_of("reduction", reduction, REDUCTIONS)
    cf = cosine_form(gramian)
    c = cf.cos
    t = c.shape[0]
    perms = jax.vmap(lambda k: jax.random.permutation(k, t))(jax.random.split(key, t))

    def project(i, perm):
        # g_i' = |g_i| sum_k v_k u_k, projected on the unit gradients u_j: scale-free
        def body(v, j):
            dot = v @ c[:, j]
            conflict = (j != i) & (dot < 0) & cf.alive[j]
            return v - jnp.where(conflict, dot, 0.0) * jax.nn.one_hot(j, t, dtype=v.dtype), None

        v, _ = jax.lax.scan(body, jax.nn.one_hot(i, t, dtype=c.dtype), perm)
        return v

    v = jax.vmap(project)(jnp.arange(t), perms)
    w = cf.norms @ cf.from_units(v)
    return w / t if reduction == "mean" else w


@method_state
class PCGradState(NamedTuple):
    """State of :func:`pcgrad`."""

    key: jax.Array                  # PRNG key of the next projection orders
    weights: jax.Array | None       # f32[T]: the last weights (None without num_tasks)
    skipped: jax.Array              # i32[]: non-finite steps skipped


@register("pcgrad", "PCGrad", "gramian", "Yu et al. 2020", weights=pcgrad_weights, random=True,
          scale="linear", permutation="distribution", one_task_identity=True)
def pcgrad(*, reduction: str = "sum", seed: int = 0,
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """PCGrad: project each task gradient off the gradients it conflicts with.

    Yu et al. (2020). Update rule: for each task ``i``, start from ``g_i`` and, for every
    other task ``j`` in a random order, if ``g_i' . g_j < 0`` replace ``g_i' <- g_i' - (g_i'
    . g_j / |g_j|^2) g_j``; ``d = sum_i g_i'``. Like TorchJD, the task itself is skipped in
    its own projection order (the paper's code includes it, which never projects since ``g_i
    . g_i >= 0`` at that point in the common case). Linear under positive scaling; for two
    tasks the order does not matter.

    Everything is an inner product, so PCGrad is computed as a weighting of the
    Gramian, on the unit gradients (the cosine matrix): every projection is
    scale-free, whatever the norms. The projection orders come from a PRNG key
    carried in the state, seeded by ``seed`` and split at every update, so runs
    are reproducible and ``jit``/``lax.scan`` work.

    Args:
      reduction: ``'sum'`` (default, as TorchJD and LibMTL) or ``'mean'`` of the
        projected gradients (the PyTorch port of the paper's code divides the
        shared parameters' update by ``T``).
      seed: seed of the PRNG key kept in the state.
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`PCGradState`; its
      public weighting is :func:`pcgrad_weights`.

    References:
      - Yu et al. (2020). "Gradient Surgery for Multi-Task Learning"
    """
    one_of("reduction", reduction, REDUCTIONS)
    t = task_count(num_tasks, "pcgrad")

    def init_fn(params):
        del params
        return PCGradState(jax.random.PRNGKey(seed), initial_weights(t), no_skips())

    def weight_fn(gram, state, **_):
        key, sub = jax.random.split(state.key)
        return pcgrad_weights(gram, sub, reduction=reduction), state._replace(key=key)

    return weighted_method(weight_fn, name="pcgrad", num_tasks=t, init_fn=init_fn)
