"""STCH: smooth Tchebycheff scalarisation.

Lin et al. (2024), "Smooth Tchebycheff Scalarization for Multi-Objective
Optimization". Update rule: ``L = mu log sum_t exp(p_t (L_t - z_t) / mu)``, so
``w = p * softmax(p (L - z) / mu)``, ``d = sum_t w_t g_t``; ``mu -> 0`` approaches
the Tchebycheff (max) scalarisation, large ``mu`` the weighted sum. Defaults:
``mu = 1.0``, preference ``p = 1``, ideal point ``z = 0``. (LibMTL's variant
applies it to log losses normalised by a nadir point after a warm-up; pass
such losses yourself to reproduce it.) Needs ``losses``.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from jaxmtl.weighting._losses import loss_weighting


def stch(mu: float = 1.0, pref: Sequence[float] | None = None, ideal: Sequence[float] | None = None, *,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """STCH as an optax transformation (see the module docstring)."""
    if not mu > 0:
        raise ValueError(f"mu must be positive, got {mu}")
    for vec in (pref, ideal):
        if vec is not None and num_tasks is None:
            num_tasks = len(vec)

    def weights(losses):
        p = jnp.ones_like(losses) if pref is None else jnp.asarray(pref, jnp.float32)
        z = jnp.zeros_like(losses) if ideal is None else jnp.asarray(ideal, jnp.float32)
        return p * jax.nn.softmax(p * (losses - z) / mu)

    return loss_weighting(weights, name="stch", num_tasks=num_tasks)
