"""RLW: random loss weighting.

Lin et al. (2022), "Reasonable Effectiveness of Random Weighting: A Litmus Test
for Multi-Task Learning". Update rule: fresh weights every step, ``w =
softmax(z)`` with ``z ~ N(0, I)`` (``distribution='normal'``, LibMTL's default)
or ``w ~ Dirichlet(alpha 1)`` (``'dirichlet'``, ``alpha = 1``: uniform on the
simplex); ``d = sum_t w_t g_t``. The PRNG key lives in the state (``seed``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.method import weighted_method

DISTRIBUTIONS = ("normal", "dirichlet")


def rlw(distribution: str = "normal", *, alpha: float = 1.0, seed: int = 0,
        num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """RLW as an optax transformation (see the module docstring)."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")

    def weight_fn(g, key, *, t, **_):
        key, sub = jax.random.split(key)
        if distribution == "normal":
            w = jax.nn.softmax(jax.random.normal(sub, (t,)))
        else:
            w = jax.random.dirichlet(sub, jnp.full((t,), alpha))
        return w, key

    return weighted_method(weight_fn, name="rlw", num_tasks=num_tasks, uses_gramian=False,
                           init_inner=lambda: jax.random.PRNGKey(seed))
