"""The simple gradient noise scale of McCandlish et al. (2018), "An Empirical Model of
Large-Batch Training" (arXiv 1812.06162), from per-example gradients (Paper B).

With ``G`` the true gradient and ``Sigma`` the per-example gradient covariance,
the *simple noise scale* ``B_simple = tr(Sigma) / |G|^2`` is the batch size at
which the gradient noise and the signal are comparable. A batch mean of ``B``
examples has ``E |G_B|^2 = |G|^2 + tr(Sigma) / B``, so the plain squared norm of
the batch gradient is biased upwards; their appendix A.1 removes the bias with
two batch sizes ``B_small < B_big``:

    |G|^2    ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
    tr Sigma ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big).

Here ``B_small = 1`` (each example's gradient, ``|G_small|^2`` the mean of
``|g_i|^2``) and ``B_big = S`` (the batch mean ``gbar``). Then
``tr Sigma ~ (1/(S-1)) sum_i |g_i - gbar|^2`` (the unbiased sample covariance's
trace, computed two-pass for accuracy) and ``|G|^2 ~ |gbar|^2 - tr Sigma / S``;
both are unbiased, their ratio is not (McCandlish et al. average the two over
many batches before dividing: the components are returned for that).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmtl.analysis._examples import mean_and_spread, per_task, rescale, scaled_examples


class NoiseScale(NamedTuple):
    """Scalars, or ``(T,)`` arrays with a task axis."""
    simple: jax.Array  # B_simple = trace_sigma / grad_sq_norm (unbiased parts)
    plain: jax.Array  # trace_sigma / |gbar|^2: the batch gradient taken for G, biased low
    trace_sigma: jax.Array  # unbiased estimate of tr(Sigma), >= 0
    grad_sq_norm: jax.Array  # unbiased estimate of |G|^2; negative when the noise swamps the mean


def gradient_noise_scale(per_example_grads: Any, *, task_axis: bool = False) -> NoiseScale:
    """McCandlish et al.'s simple noise scale of ``S >= 2`` per-example gradients.

    Layout as in :func:`jaxmtl.analysis.fisher_trace`: leaves ``(S, *param.shape)``
    (scalar fields), or ``(S, T, *param.shape)`` with ``task_axis=True``
    (``(T,)`` fields, each task on its own).

    Degenerate cases give documented values, never NaN:

    * ``simple`` and ``plain`` are ``0`` when ``tr Sigma = 0`` (identical
      gradients, or all zero: every batch size gives the same gradient, so there
      is no noise to average away);
    * ``simple`` is ``+inf`` when ``tr Sigma > 0`` but the estimate of ``|G|^2`` is
      not positive (the batch does not resolve the mean gradient from the noise:
      no finite batch size is estimated to suffice), and ``plain`` is ``+inf``
      when the batch mean is exactly zero with non-zero noise (e.g. ``g`` and ``-g``);
    * one example (``S = 1``) raises ``ValueError``: there is no spread to measure;
    * NaN in the input gives NaN (not one of the values above).

    The ratios are computed on gradients divided by each task's largest entry,
    so they are accurate and finite for gradients from 1e-30 to 1e30 and in
    bfloat16 (computed in float32; float64 for float64 input); ``trace_sigma``
    and ``grad_sq_norm`` are in squared gradient units and become ``inf`` only
    when they exceed the float range. Jit-compatible.
    """
    x = scaled_examples(per_example_grads, task_axis)
    s = x.examples
    if s < 2:
        raise ValueError("the noise scale needs at least two examples: got one example (S = 1), "
                         "which has no spread to measure")
    mean_sq, spread = mean_and_spread(x.blocks)
    trace = spread / (s - 1)
    signal = mean_sq - trace / s
    out = NoiseScale(simple=_ratio(trace, signal), plain=_ratio(trace, mean_sq),
                     trace_sigma=rescale(trace, x.peak), grad_sq_norm=rescale(signal, x.peak))
    return NoiseScale(*(per_task(v, task_axis) for v in out))


def _ratio(noise: jax.Array, signal: jax.Array) -> jax.Array:
    """``noise / signal`` with the documented limits: 0 without noise, inf without a positive
    signal; NaN only from NaN input."""
    r = jnp.where(signal > 0, noise / jnp.where(signal > 0, signal, 1.0), jnp.inf)
    r = jnp.where(noise > 0, r, 0.0)
    return jnp.where(jnp.isnan(noise) | jnp.isnan(signal), jnp.nan, r)
