"""Aligned-MTL: align the principal components of the task Jacobian.

Senushkin et al. (2023), "Independent Component Alignment for Multi-Task
Learning". Update rule: eigendecompose ``G = V diag(lam) V^T``, keep the
eigenvalues above ``max(lam) * T * eps_float32`` (rank masking, as the official
code), form ``B = s * V diag(lam^{-1/2}) V^T`` on that subspace and use
``w = B p`` (``d = J^T w``: the rows of the aligned Jacobian ``B J`` are
orthogonal with equal norms ``s``, then combined with the preference ``p``).
``p`` defaults to ``1/T`` each, as TorchJD (whose published outputs we match);
the official code and LibMTL sum the aligned rows, i.e. ``p = 1`` (an update
``T`` times larger): pass ``pref=[1] * T`` for that. ``scale_mode`` picks ``s``:
``'min'`` (``sqrt(min kept lam)``, default, official), ``'median'`` or
``'rmse'`` (``sqrt(mean kept lam)``). Linear in a common rescaling,
permutation invariant. Degenerate input: zero Gramian gives zero weights.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import stateless, weighted_method

_SCALE_MODES = ("min", "median", "rmse")


def aligned_mtl_weights(gramian: jax.Array, pref: jax.Array | None = None, *,
                        scale_mode: str = "min") -> jax.Array:
    """Aligned-MTL weights from any Gramian."""
    if scale_mode not in _SCALE_MODES:
        raise ValueError(f"scale_mode must be one of {_SCALE_MODES}, got {scale_mode!r}")
    g = normalize_gramian(gramian)
    t = g.shape[0]
    lam, v = jnp.linalg.eigh(g)
    keep = lam > jnp.max(lam) * t * jnp.finfo(jnp.float32).eps
    keep = keep & (jnp.max(lam) > 0)
    inv_sqrt = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
    kept = jnp.where(keep, lam, jnp.nan)
    if scale_mode == "min":
        s2 = jnp.nanmin(kept)
    elif scale_mode == "median":
        s2 = jnp.nanmedian(kept)
    else:
        s2 = jnp.nanmean(kept)
    s = jnp.sqrt(jnp.where(jnp.any(keep), s2, 0.0))
    b = s * (v * inv_sqrt) @ v.T
    pref = jnp.full((t,), 1.0 / t) if pref is None else jnp.asarray(pref, jnp.float32)
    return b @ pref


def aligned_mtl(scale_mode: str = "min", pref: jax.Array | None = None, *,
                num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Aligned-MTL as an optax transformation (see the module docstring)."""
    if scale_mode not in _SCALE_MODES:
        raise ValueError(f"scale_mode must be one of {_SCALE_MODES}, got {scale_mode!r}")
    if pref is not None and num_tasks is None:
        num_tasks = len(pref)
    weighting = functools.partial(aligned_mtl_weights, pref=pref, scale_mode=scale_mode)
    return weighted_method(stateless(weighting), name="aligned_mtl", num_tasks=num_tasks)
