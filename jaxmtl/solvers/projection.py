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
    # u_k - partial_k / k + 1 / k > 0 in that order: exact for k = 1 (the largest entry always
    # qualifies) however large the entries, where u_k k > partial_k - 1 would lose the 1
    count = jnp.maximum(jnp.sum((u - partial / k) + 1.0 / k > 0), 1)
    c = count.astype(jnp.float32)
    return jnp.maximum((x - partial[count - 1] / c) + 1.0 / c, 0.0)
