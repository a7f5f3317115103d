"""Aligned-MTL: align the principal components of the task Jacobian."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import one_of
from jaxmtl.aggregators._dual_cone import preference
from jaxmtl.gramians import ScaledGramian, cosine_form
from jaxmtl.protocol import gramian_method
from jaxmtl.registry import register

__all__ = ["aligned_mtl", "aligned_mtl_weights"]

SCALE_MODES = ("min", "median", "rmse")


def aligned_mtl_weights(gramian: jax.Array | ScaledGramian, pref: jax.Array | None = None, *,
                        scale_mode: str = "min") -> jax.Array:
    """Aligned-MTL weights from a Gramian of any origin; see :func:`aligned_mtl`."""
    one_of("scale_mode", scale_mode, SCALE_MODES)
    cf = cosine_form(gramian)
    t = cf.cos.shape[0]
    # G / scale^2 = M M^T with M = N C^(1/2): its singular values (the square roots of G's
    # eigenvalues) come out with high relative accuracy even when the norms are graded
    mu, q = jnp.linalg.eigh(cf.cos)
    root = (q * jnp.sqrt(jnp.maximum(mu, 0.0))) @ q.T
    v, sigma, _ = jnp.linalg.svd(cf.norms[:, None] * root)
    lam = sigma**2
    keep = (lam > jnp.max(lam) * t * jnp.finfo(jnp.float32).eps) & (jnp.max(lam) > 0)
    inv_sqrt = jnp.where(keep, 1.0 / jnp.where(keep, sigma, 1.0), 0.0)
    kept = jnp.where(keep, lam, jnp.nan)
    if scale_mode == "min":
        s2 = jnp.nanmin(kept)
    elif scale_mode == "median":
        s2 = jnp.nanmedian(kept)
    else:
        s2 = jnp.nanmean(kept)
    s = jnp.sqrt(jnp.where(jnp.any(keep), s2, 0.0))
    return s * (v * inv_sqrt) @ (v.T @ preference(pref, t))


@register("aligned_mtl", "Aligned-MTL", "gramian", "Senushkin et al. 2023", weights=aligned_mtl_weights,
          scale="linear", one_task_identity=True, full_rank_only=True)
def aligned_mtl(scale_mode: str = "min", *, pref: jax.Array | None = None,
                num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Aligned-MTL: align the principal components of the task Jacobian.

    Senushkin et al. (2023). Update rule: eigendecompose ``G = V diag(lam) V^T``, keep the
    eigenvalues above ``max(lam) * T * eps_float32`` (rank masking, as the official code and
    TorchJD), form ``B = s * V diag(lam^-1/2) V^T`` on that subspace and use ``w = B p``:
    the rows of the aligned Jacobian ``B J`` are orthogonal with equal norms ``s``, combined
    with the preference ``p``. ``p`` defaults to ``1/T`` each, as TorchJD (whose published
    outputs we match); the official code and LibMTL sum the aligned rows, i.e. ``p = 1`` (an
    update ``T`` times larger): pass ``pref=jnp.ones(T)`` for that. Linear in a common
    rescaling, permutation invariant; a zero Gramian gives zero weights.

    The eigenvalues come from the singular values of ``diag(|g|) C^(1/2)`` (``C``
    the cosine matrix), which keep their relative accuracy when the gradient
    norms differ by orders of magnitude (a float32 ``eigh`` of ``G`` gives the
    small eigenvalues, and with ``scale_mode='min'`` the scale ``s``, only to
    ``eps * max(lam)``).

    Args:
      scale_mode: the scale ``s``: ``'min'`` (``sqrt(min kept lam)``, default,
        official), ``'median'`` or ``'rmse'`` (``sqrt(mean kept lam)``).
      pref: per-task preference ``p`` (default ``1/T`` each).
      num_tasks: when given, the task count is checked and the weights are
        recorded in ``state.weights``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its public weighting is
      :func:`aligned_mtl_weights`.

    References:
      - Senushkin et al. (2023). "Independent Component Alignment for Multi-Task Learning"
    """
    one_of("scale_mode", scale_mode, SCALE_MODES)
    return gramian_method(aligned_mtl_weights, name="aligned_mtl", num_tasks=num_tasks, pref=pref,
                          scale_mode=scale_mode)
