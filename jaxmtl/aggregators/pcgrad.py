"""PCGrad: project each task gradient off the gradients it conflicts with.

Yu et al. (2020), "Gradient Surgery for Multi-Task Learning". Update rule: for
each task ``i``, start from ``g_i`` and, for every other task ``j`` in a random
order, if ``g_i' . g_j < 0`` replace ``g_i' <- g_i' - (g_i' . g_j / |g_j|^2) g_j``;
``d = sum_i g_i'`` (``reduction='sum'``, as TorchJD and LibMTL; ``'mean'``
divides by ``T`` as the PyTorch port of the paper's code does for shared
parameters).

Everything is an inner product, so PCGrad is computed as a weighting of the
Gramian: ``g_i' = sum_k C[i, k] g_k`` and ``w = sum_i C[i]``. Like TorchJD,
the task itself is skipped in its own projection order (the paper's code
includes it, which never projects since ``g_i . g_i >= 0`` at that point in the
common case).

Randomness: the permutations come from a PRNG key carried in the optax state,
seeded by ``seed`` and split at every update, so runs are reproducible and
``jit``/``lax.scan`` work. For two tasks the order does not matter.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import weighted_method

_REDUCTIONS = ("sum", "mean")


def pcgrad_weights(gramian: jax.Array, key: jax.Array, *, reduction: str = "sum") -> jax.Array:
    """PCGrad weights from any Gramian; ``key`` draws the projection orders."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    g = normalize_gramian(gramian)
    t = g.shape[0]
    perms = jax.vmap(lambda k: jax.random.permutation(k, t))(jax.random.split(key, t))

    def project(i, perm):
        def body(c, j):
            dot = c @ g[:, j]
            norm2 = g[j, j]
            conflict = (j != i) & (dot < 0) & (norm2 > 0)
            coef = jnp.where(conflict, dot / jnp.where(norm2 > 0, norm2, 1.0), 0.0)
            return c - coef * jax.nn.one_hot(j, t, dtype=c.dtype), None

        c, _ = jax.lax.scan(body, jax.nn.one_hot(i, t, dtype=g.dtype), perm)
        return c

    w = jnp.sum(jax.vmap(project)(jnp.arange(t), perms), axis=0)
    return w / t if reduction == "mean" else w


def pcgrad(*, seed: int = 0, reduction: str = "sum",
           num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """PCGrad as an optax transformation (see the module docstring).

    Args:
      seed: seed of the PRNG key kept in the state (drawn anew every update).
      reduction: ``'sum'`` (default) or ``'mean'`` of the projected gradients.
      num_tasks: when given, the input's task count is checked and the weights
        are recorded in ``state.weights``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")

    def weight_fn(g, key, **_):
        key, sub = jax.random.split(key)
        return pcgrad_weights(g, sub, reduction=reduction), key

    return weighted_method(weight_fn, name="pcgrad", num_tasks=num_tasks,
                           init_inner=functools.partial(jax.random.PRNGKey, seed))
