"""GradVac: steer pairwise gradient similarities towards their running targets.

Wang et al. (2021), "Gradient Vaccine: Investigating and Improving Multi-task
Optimization in Massively Multilingual Models". Update rule: for each task
``i`` start from ``g_i`` and, for every other task ``j`` in a random order, with
``phi = cos(g_i', g_j)`` and the target ``phi_hat = T[i, j]``: if
``phi < phi_hat``, add
``|g_i'| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) / (|g_j| sqrt(1 - phi_hat^2)) g_j``;
then ``T[i, j] <- (1 - beta) T[i, j] + beta phi``. ``d = sum_i g_i'``.
Targets start at 0, so the first steps act like PCGrad.

``beta = 0.5`` as LibMTL (the paper uses 1e-2); whole-model granularity
(LibMTL's ``GradVac_group_type=0``). Computed on the Gramian (all quantities
are inner products); the ``T x T`` targets and the PRNG key live in the state,
so ``num_tasks`` is required.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian, require_num_tasks
from jaxmtl.method import weighted_method


def gradvac_weights(gramian: jax.Array, targets: jax.Array, key: jax.Array, *,
                    beta: float = 0.5) -> tuple[jax.Array, jax.Array]:
    """GradVac weights and the updated targets, from any Gramian."""
    g = normalize_gramian(gramian)
    t = g.shape[0]
    norms = jnp.sqrt(jnp.maximum(jnp.diag(g), 0.0))
    perms = jax.vmap(lambda k: jax.random.permutation(k, t))(jax.random.split(key, t))

    def vaccinate(i, perm, row):
        def body(carry, j):
            c, row = carry
            norm_i = jnp.sqrt(jnp.maximum(c @ g @ c, 0.0))
            denom = norm_i * norms[j]
            phi = jnp.where(denom > 0, (c @ g[:, j]) / jnp.where(denom > 0, denom, 1.0), 0.0)
            phi = jnp.clip(phi, -1.0, 1.0)
            target = row[j]
            sin_t = jnp.sqrt(jnp.maximum(1.0 - target**2, 1e-12))
            coef = norm_i * (target * jnp.sqrt(1.0 - phi**2) - phi * sin_t) / (
                jnp.where(norms[j] > 0, norms[j], 1.0) * sin_t)
            active = (j != i) & (phi < target) & (denom > 0)
            c = c + jnp.where(active, coef, 0.0) * jax.nn.one_hot(j, t, dtype=c.dtype)
            row = jnp.where((j != i) & (jnp.arange(t) == j), (1 - beta) * row + beta * phi, row)
            return (c, row), None

        (c, row), _ = jax.lax.scan(body, (jax.nn.one_hot(i, t, dtype=g.dtype), row), perm)
        return c, row

    coefs, rows = jax.vmap(vaccinate)(jnp.arange(t), perms, targets)
    return jnp.sum(coefs, axis=0), rows


def gradvac(beta: float = 0.5, *, seed: int = 0,
            num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradVac as an optax transformation (see the module docstring)."""
    t = require_num_tasks(num_tasks, "gradvac", "its state holds the T x T similarity targets")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1], got {beta}")

    def init_inner():
        return {"targets": jnp.zeros((t, t), jnp.float32), "key": jax.random.PRNGKey(seed)}

    def weight_fn(g, inner, **_):
        key, sub = jax.random.split(inner["key"])
        w, targets = gradvac_weights(g, inner["targets"], sub, beta=beta)
        return w, {"targets": targets, "key": key}

    return weighted_method(weight_fn, name="gradvac", num_tasks=t, init_inner=init_inner)
