"""Euclidean projection onto the probability simplex."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def project_simplex(x: jax.Array) -> jax.Array:
    """``argmin_{p >= 0, sum p = 1} |p - x|`` for ``x`` of shape ``(T,)``, in float32.

    The sorting method (Held, Wolfe & Crowder 1974; Duchi et al. 2008): with ``u``
    the entries in decreasing order and ``k`` the largest index such that
    ``u_k > (u_1 + ... + u_k - 1) / k``, the projection is ``max(x - theta, 0)`` with
    ``theta = (u_1 + ... + u_k - 1) / k``. Plain JAX operations, so its derivative is
    JAX's own (the support's: exact wherever the support is stable), also under
    ``jax_enable_x64`` (optax's projection mixes float64 and float32 there).
    """
    x = jnp.asarray(x, jnp.float32)
    u = jnp.sort(x)[::-1]
    partial = jnp.cumsum(u)
    k = jnp.arange(1, x.shape[-1] + 1, dtype=jnp.float32)
    count = jnp.sum(u * k > partial - 1.0)            # >= 1: the largest entry always qualifies
    theta = (partial[count - 1] - 1.0) / count.astype(jnp.float32)
    return jnp.maximum(x - theta, 0.0)
