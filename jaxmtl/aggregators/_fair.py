"""The alpha-fair weights shared by Nash-MTL (alpha = 1) and FairGrad, in cosine form.

``w > 0`` with ``(G w)_t = w_t^(-p)``, ``p = 1/alpha``. With ``G = s^2 N C N``
(:class:`jaxmtl.gramians.CosineForm`) the substitution ``w_t = (s n_t)^(-k) z_t``,
``k = 2/(1+p)``, leaves ``(C (e z))_t / e_t = z_t^(-p)`` with
``e_t = n_t^((p-1)/(p+1))``, which :func:`jaxmtl.solvers.power_root` solves with
every row of order one: the norms enter only through known powers, applied in
log space. Zero gradients get weight 0 (their row of ``C`` is the identity's).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmtl._checks import as_float
from jaxmtl.gramians import CosineForm
from jaxmtl.solvers import power_root


def fair_solution(cf: CosineForm, p: jax.Array, reg: jax.Array, num_iters, x0=None) -> jax.Array:
    """``z`` of the scaled equation (see the module docstring), with ``reg * I`` added to ``C``."""
    t = cf.cos.shape[0]
    log_n = jnp.log(jnp.where(cf.alive, cf.norms, 1.0))
    e = jnp.exp((p - 1.0) / (p + 1.0) * log_n)
    return power_root(cf.cos + as_float(reg) * jnp.eye(t), p, e=e, x0=x0, num_iters=num_iters)


def fair_weights(cf: CosineForm, z: jax.Array, p: jax.Array) -> jax.Array:
    """The weights ``w_t = (s n_t)^(-2/(1+p)) z_t`` of the true gradients (0 for zero ones)."""
    log_sn = jnp.log(cf.scale) + jnp.log(jnp.where(cf.alive, cf.norms, 1.0))
    return jnp.where(cf.alive, z * jnp.exp(-2.0 / (1.0 + p) * log_sn), 0.0)
