"""GradDrop: drop each coordinate's gradients of the minority sign, at random."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import check, task_count
from jaxmtl.gramians import update_dtype
from jaxmtl.protocol import method, method_state, no_skips
from jaxmtl.registry import register

__all__ = ["GradDropState", "graddrop"]


@method_state
class GradDropState(NamedTuple):
    """State of :func:`graddrop`."""

    key: jax.Array          # PRNG key of the next masks
    weights: None           # coordinate-wise: no task weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("graddrop", "GradDrop", "coordinate", "Chen et al. 2020", random=True, permutation="distribution",
          one_task_identity=True)
def graddrop(leak: float | jax.Array = 0.0, *, seed: int = 0, batch_axes: tuple[int, ...] = (), input_sign: bool = False,
             renormalize: bool = False, num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """GradDrop: drop each coordinate's gradients of the minority sign, at random.

    Chen et al. (2020). Update rule, per coordinate: the sign purity ``P = 1/2 (1 + sum_t
    g_t / sum_t |g_t|)``, ``U ~ Uniform(0, 1)``; task ``t``'s gradient is kept where ``(P >
    U and g_t > 0)`` or ``(P < U and g_t < 0)``; ``d = sum_t (leak_t + (1 - leak_t) mask_t)
    g_t``.

    The paper applies GradDrop to the gradients of a shared activation layer;
    like TorchJD, jaxmtl applies it to whatever stacked gradients it receives
    (pass representation gradients to reproduce the paper's placement).
    Coordinate-wise, so it exposes no Gramian weighting and records no task
    weights. A NaN or infinite gradient coordinate stays non-finite in the
    update (so the step is skipped, see :mod:`jaxmtl.protocol`), with or without
    ``jit``.

    Paper C's placement (its official ``optimizers/graddrop.py``, on the gradients
    with respect to a ``(batch, features)`` representation, see
    :func:`jaxmtl.training.representation.make_representation_train_step`) is
    ``batch_axes=(0,), input_sign=True, renormalize=True``: the signs are read from
    ``g_t * sign(z)`` (the activation's sign, 0 where ``|z| <= 1e-7``), summed over the
    batch for one purity and one draw per feature, and the kept sum is rescaled to
    the norm of the plain sum.

    Args:
      leak: the fraction of every gradient always kept, a scalar or one per task
        in [0, 1], ``0.0``.
      batch_axes: axes of each gradient, counted after the task axis, summed before the
        purity (a batch: one draw per remaining coordinate, broadcast over them), ``()``.
      input_sign: multiply each gradient by the sign of the ``params`` argument of
        ``update`` (the activations, in a representation step) before reading signs,
        ``False``.
      renormalize: rescale each leaf's update to the norm of ``sum_t g_t``, ``False``.
      seed: seed of the PRNG key kept in the state (split at every update).
      num_tasks: when given, the task count is checked.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`GradDropState`.

    References:
      - Chen et al. (2020). "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
        Dropout"
    """
    check("leak", leak, lambda v: (v >= 0) & (v <= 1), "in [0, 1] (a scalar or one per task)")
    t_fixed = task_count(num_tasks, "graddrop")
    if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in batch_axes):
        raise ValueError(f"graddrop: batch_axes must be axes (ints >= 0) after the task axis, got {batch_axes!r}")
    batch_axes = tuple(batch_axes)

    def init_fn(params):
        del params
        return GradDropState(jax.random.PRNGKey(seed), None, no_skips())

    def update_fn(task_grads, state, params=None, *, t, **_):
        lk = jnp.asarray(leak, jnp.float32)
        if lk.ndim > 1 or lk.size not in (1, t):
            raise ValueError(f"leak has shape {lk.shape}: give a scalar or one value per task ({t})")
        lk = jnp.broadcast_to(jnp.reshape(lk, (-1,)), (t,))
        if input_sign and params is None:
            raise ValueError("graddrop(input_sign=True) reads the activations' signs from update's params "
                             "argument; none was given")
        key, sub = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(task_grads)
        inputs = jax.tree.leaves(params) if input_sign else [None] * len(leaves)
        if len(inputs) != len(leaves):
            raise ValueError(f"graddrop(input_sign=True): params has {len(inputs)} leaves, the gradients {len(leaves)}")
        out = []
        for g, x, k in zip(leaves, inputs, jax.random.split(sub, len(leaves))):
            if any(a >= g.ndim - 1 for a in batch_axes):
                raise ValueError(f"graddrop: batch_axes={batch_axes} needs more axes after the task axis than "
                                 f"the gradient of shape {g.shape[1:]} has")
            gf = g.astype(jnp.float32)
            signed = gf if x is None else gf * jnp.where(jnp.abs(x) > 1e-7, jnp.sign(x), 0.0).astype(jnp.float32)
            axes = (0, *(a + 1 for a in batch_axes))
            total, mass = jnp.sum(signed, axis=axes), jnp.sum(jnp.abs(signed), axis=axes)
            purity = 0.5 * (1.0 + total / jnp.where(mass > 0, mass, 1.0))
            u = jax.random.uniform(k, purity.shape)
            keep = ((purity > u) & (signed > 0)) | ((purity < u) & (signed < 0))
            coef = lk.reshape((t,) + (1,) * (gf.ndim - 1))
            d = jnp.sum(jnp.where(keep, 1.0, coef) * gf, axis=0)
            plain = jnp.sum(gf, axis=0)
            if renormalize:
                norm_d = jnp.linalg.norm(d)
                d = d * jnp.linalg.norm(plain) / jnp.where(norm_d > 0, norm_d, 1.0)
            # a non-finite coordinate must not be masked away (XLA may fold 0 * nan to 0)
            d = jnp.where(jnp.isfinite(plain), d, plain)
            out.append(d.astype(update_dtype(g.dtype)))
        return jax.tree.unflatten(treedef, out), state._replace(key=key)

    return method(update_fn, init_fn, name="graddrop", num_tasks=t_fixed)
