"""Nash-MTL: the Nash bargaining solution between the tasks.

Navon et al. (2022), "Multi-Task Learning as a Bargaining Game". Update rule:
``alpha > 0`` with ``G alpha = 1 / alpha`` (every task's utility ``g_t . d`` equals
``1 / alpha_t``), ``d = J^T alpha``; then, as the official code and LibMTL do on
the shared parameters, ``d`` is clipped to norm ``max_norm`` (``1.0``; ``0``
disables). Since ``|J^T alpha|^2 = alpha^T G alpha = T``, the unclipped update has
norm ``sqrt(T)`` whatever the gradient scale: Nash-MTL is scale-*invariant*,
not scale-linear. Permutation invariant.

Solver: damped Newton on the convex potential ``1/2 a^T G a - sum log a``
(:func:`jaxmtl.solvers.power_root`), ``optim_niter = 20`` iterations, on the
trace-normalised Gramian plus ``reg * I`` (``1e-6``), warm-started from the
previous step's solution when ``num_tasks`` is given (the official code warm
starts its sequential cvxpy solves the same way). ``update_weights_every = k``
recomputes the weights every ``k`` steps and reuses them in between (needs
``num_tasks``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxmtl.gramian import normalize_gramian
from jaxmtl.method import weighted_method
from jaxmtl.solvers import power_root


def nash_mtl_weights(gramian: jax.Array, *, iters: int = 20, reg: float = 1e-6) -> jax.Array:
    """``alpha`` with ``G alpha = 1 / alpha`` for any Gramian (no norm clipping)."""
    g = jnp.asarray(gramian, jnp.float32)
    tr = jnp.maximum(jnp.trace(g), 1e-30)
    a = power_root(normalize_gramian(g) + reg * jnp.eye(g.shape[0]), 1.0, iters=iters)
    return a / jnp.sqrt(tr)


def nash_mtl(max_norm: float = 1.0, optim_niter: int = 20, update_weights_every: int = 1, *,
             reg: float = 1e-6, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Nash-MTL as an optax transformation (see the module docstring)."""
    if max_norm < 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if update_weights_every < 1:
        raise ValueError(f"update_weights_every must be >= 1, got {update_weights_every}")
    if update_weights_every > 1 and num_tasks is None:
        raise ValueError("nash_mtl needs num_tasks when update_weights_every > 1 "
                         "(the reused weights live in the state)")

    def init_inner():
        if num_tasks is None:
            return ()
        return {"alpha": jnp.zeros((num_tasks,)), "step": jnp.zeros((), jnp.int32)}

    def weight_fn(g, inner, *, t, scale, **_):
        gr = g + reg * jnp.eye(t)
        if num_tasks is None:
            alpha = power_root(gr, 1.0, iters=optim_niter)
        else:
            fresh = (inner["step"] % update_weights_every == 0) | jnp.any(inner["alpha"] <= 0)
            alpha = jax.lax.cond(fresh, lambda a: power_root(gr, 1.0, x0=a, iters=optim_niter),
                                 lambda a: a, inner["alpha"])
            inner = {"alpha": alpha, "step": inner["step"] + 1}
        norm = jnp.sqrt(jnp.maximum(alpha @ g @ alpha, 0.0))  # |J^T (alpha / scale)|
        clip = jnp.where((max_norm > 0) & (norm > max_norm), max_norm / jnp.maximum(norm, 1e-30), 1.0)
        return alpha * clip / scale, inner

    return weighted_method(weight_fn, name="nash_mtl", num_tasks=num_tasks, init_inner=init_inner)
