"""FairGrad: alpha-fair resource allocation between the tasks.

Ban & Ji (2024), "Fair Resource Allocation in Multi-Task Learning". Update
rule: ``w > 0`` with ``(G w)_t = w_t^(-1/alpha)`` (the alpha-fair optimality
condition on the tasks' utilities ``g_t . d``), ``d = J^T w``. ``alpha = 1``
is proportional fairness (Nash-MTL's condition, without its norm clipping);
``alpha -> inf`` approaches max-min fairness. Default ``alpha = 1.0``.

Solver: damped Newton on the convex potential of ``G w = w^(-1/alpha)``
(:func:`jaxmtl.solvers.power_root`, ``iters = 20``) on the trace-normalised
Gramian plus ``reg * I`` (``1e-6``); the official code uses scipy's
``least_squares`` from the uniform point. ``|d|`` scales as ``s^(1 - 2/(1+p))``
(``p = 1/alpha``) when the gradients scale by ``s``: invariant for
``alpha = 1``. Permutation invariant.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import weighted_method
from jaxmtl.solvers import power_root


def fairgrad_weights(gramian: jax.Array, *, alpha: float = 1.0, iters: int = 20,
                     reg: float = 1e-6) -> jax.Array:
    """FairGrad weights for any Gramian."""
    p = 1.0 / alpha
    g = jnp.asarray(gramian, jnp.float32)
    tr = jnp.maximum(jnp.trace(g), 1e-30)
    w = power_root(normalize_gramian(g) + reg * jnp.eye(g.shape[0]), p, iters=iters)
    return w * tr ** (-1.0 / (1.0 + p))

def fairgrad(alpha: float = 1.0, *, iters: int = 20, reg: float = 1e-6,
             num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """FairGrad as an optax transformation (see the module docstring)."""
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    p = 1.0 / alpha

    def weight_fn(g, inner, *, t, scale, **_):
        w = power_root(g + reg * jnp.eye(t), p, iters=iters)
        return w * scale ** (-2.0 / (1.0 + p)), inner

    return weighted_method(weight_fn, name="fairgrad", num_tasks=num_tasks)

