"""CDTT: the central (EDM) direction pulled by task tensioners."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import as_float, check, task_count
from jaxmtl.aggregators.edm import weights_from_cosines
from jaxmtl.gramians import CosineForm, ScaledGramian, cosine_form
from jaxmtl.protocol import initial_weights, method_state, no_skips, weighted_method
from jaxmtl.registry import register

__all__ = ["CDTTState", "cdtt", "cdtt_weights"]

WINDOW = 10
"""Updates in the sliding window of gradient norms (the official ``MAX_BATCH_ITER``)."""

_SAME = 1e-3
"""``|g_t - d| <= _SAME |g_t|``: ``g_t`` is taken to be the central direction itself (no
tensioner), below what float32 Gramians resolve."""


def cdtt_tensions(ratios: jax.Array, losses: jax.Array, alpha: float | jax.Array = 0.3) -> jax.Array:
    """The tension of each task: ``max(0, alpha * sigmoid(e (p - 1)) + 1 - alpha)`` with
    ``p = ratios + log10(losses)``; see :func:`cdtt`."""
    p = jnp.asarray(ratios, jnp.float32) + jnp.log10(jnp.maximum(jnp.asarray(losses, jnp.float32), 1e-12))
    alpha = as_float(alpha)
    e = jnp.e
    return jnp.maximum(alpha * jax.nn.sigmoid(e * (p - 1.0)) + 1.0 - alpha, 0.0)


def cdtt_weights(gramian: jax.Array | ScaledGramian, *, losses: jax.Array | None = None,
                 ratios: jax.Array | None = None, alpha: float | jax.Array = 0.3,
                 reg: float | jax.Array = 1e-6) -> jax.Array:
    """CDTT weights from a Gramian of any origin; see :func:`cdtt`.

    ``ratios``: each task's gradient-norm ratio between the current and the
    previous sliding window (``None``: no history yet, the weights are EDM's);
    then ``losses`` are needed too.
    """
    check("alpha", alpha, lambda v: v >= 0, "non-negative")
    if ratios is not None and losses is None:
        raise ValueError("cdtt_weights: the tensions need the task losses (losses=...)")
    cf = cosine_form(gramian)
    base = weights_from_cosines(cf, reg)
    if ratios is None:
        return base
    return _tensioned(cf, base, cdtt_tensions(ratios, losses, alpha))


def _tensioned(cf: CosineForm, base: jax.Array, tau: jax.Array) -> jax.Array:
    """Steps 4 and 5 of :func:`cdtt`: the central direction (EDM's weights ``base``) pulled
    by the tensions ``tau``, then kept a descent direction for every task, as weights."""
    t = cf.cos.shape[0]
    s, n, c = cf.scale, cf.norms, cf.cos
    # Coordinates on the unit gradients u_t: the central direction is d = s sum_j z_j u_j and
    # g_t - d = s sum_j diff[t, j] u_j. Every product below is of O(1) cosines with the
    # relative norms, so norms that differ by orders of magnitude lose no accuracy.
    eye = jnp.eye(t, dtype=jnp.float32)
    z = base * n
    diff = n[:, None] * eye - z[None, :]
    m = jnp.sqrt(jnp.maximum(jnp.einsum("ti,ij,tj->t", diff, c, diff, precision="highest"), 0.0))
    pull = cf.alive & (m > _SAME * n)
    coef = jnp.where(pull, tau / jnp.where(pull, m, 1.0), 0.0)
    # v = d + sum_t tau_t (g_t - d) / |g_t - d|, in absolute units: y = s z + sum_t coef_t diff_t
    y = s * z + coef @ diff

    def keep_descent(k, y):
        # v . g_k < 0: move v along the line from g_k through v to the hyperplane g_k . v = 0
        # (the point (1 - q) v + q g_k with q = -v.g_k / (|g_k|^2 - v.g_k); q itself, not
        # 1 - (1 - q), which would cancel when |g_k| is much larger than v)
        dot = (c @ y)[k]
        a = s * n[k]
        bad = cf.alive[k] & (dot < 0)
        q = -dot / jnp.where(bad, a - dot, 1.0)
        return jnp.where(bad, y + q * (a * eye[k] - y), y)

    y = jax.lax.fori_loop(0, t, keep_descent, y)
    w = jnp.where(cf.alive, y / jnp.where(cf.alive, s * n, 1.0), 0.0)
    return jnp.where(jnp.all(cf.alive), w, base)


@method_state
class CDTTState(NamedTuple):
    """State of :func:`cdtt`."""

    norms: jax.Array        # f32[WINDOW, T]: the task-gradient norms of the last WINDOW updates
    previous: jax.Array     # f32[T]: the window sums of norms at the previous update
    step: jax.Array         # i32[]: updates so far
    weights: jax.Array      # f32[T]: the last weights
    skipped: jax.Array      # i32[]: non-finite steps skipped


@register("cdtt", "CDTT", "gramian", "Nakamura et al. 2022", weights=cdtt_weights, needs_losses=True,
          needs_num_tasks=True, permutation=None, one_task_identity=True, full_rank_only=True)
def cdtt(alpha: float = 0.3, *, reg: float = 1e-6,
         num_tasks: int | None = None) -> optax.GradientTransformationExtraArgs:
    """CDTT: the central (EDM) direction pulled by task tensioners.

    Nakamura, Grassi & Wolf (2022) (the name CDTT, central direction with task tensioners,
    is Gama & Grassi's, 2025). Update rule:

    1. the central direction ``d`` is EDM's (:func:`jaxmtl.edm`): the bisector of
       the unit gradients, a convex combination of the raw gradients;
    2. the norms ``|g_t|`` of the last ``WINDOW = 10`` updates are summed, and
       ``r_t`` is that sum over the previous update's sum (from the 11th update
       on; before that the update is EDM's);
    3. each task pulls with the tension
       ``tau_t = max(0, alpha * sigmoid(e (p_t - 1)) + 1 - alpha)``,
       ``p_t = r_t + log10(L_t)``: tasks whose gradient grows, or whose loss is
       high, pull harder;
    4. ``v = d + sum_t tau_t (g_t - d) / |g_t - d|``;
    5. for ``t = 1..T`` in order, if ``g_t . v < 0``, ``v`` moves along the line
       from ``g_t`` through ``v`` to the hyperplane ``g_t . v = 0``.

    The update is ``v = J^T w`` (weights recorded). The tensioners have an
    absolute length (``tau_t`` in ``(1 - alpha, 1]`` for ``alpha <= 1``), so CDTT is
    not scale-equivariant, and step 5 depends on the task order. For two tasks
    with equal gradient norms and equal losses the weights are equal (Gama &
    Grassi's appendix). When a task's gradient is zero the update is zero and
    the history is not updated (Gama & Grassi's code). A gradient within
    ``1e-3 |g_t|`` of ``d`` pulls with no tensioner (its direction ``g_t - d`` is
    below what a float32 Gramian resolves; the reference code divides by ``0``
    for ``T = 1``).

    Computed from the Gramian in cosine form (``d``, ``|g_t - d|`` and the
    projections are products of cosines with relative norms), so norms that
    differ by orders of magnitude lose no accuracy. The references solve EDM
    by Frank-Wolfe; here it is exact.

    Args:
      alpha: the tensioners' strength, ``0.3`` (official example; Gama & Grassi
        grid {0.2, ..., 1.0}).
      reg: ridge of EDM's QP on the cosine matrix, ``1e-6``.
      num_tasks: the number of tasks (required: the state holds the norm history).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with a :class:`CDTTState`; its
      public weighting is :func:`cdtt_weights`. Needs ``losses``.

    References:
      - Nakamura, Grassi & Wolf (2022). "Leveraging convergence behavior to balance conflicting
        tasks in multi-task learning"
    """
    check("alpha", alpha, lambda v: v >= 0, "non-negative")
    check("reg", reg, lambda v: v >= 0, "non-negative")
    t = task_count(num_tasks, "cdtt", "its state holds the history of gradient norms")

    def init_fn(params):
        del params
        return CDTTState(jnp.zeros((WINDOW, t), jnp.float32), jnp.zeros((t,), jnp.float32),
                         jnp.zeros((), jnp.int32), initial_weights(t), no_skips())

    def weight_fn(gram, state, *, losses, **_):
        cf = cosine_form(gram)
        k = state.step
        norms = state.norms.at[k % WINDOW].set(cf.scale * cf.norms)
        sums = jnp.sum(norms, axis=0)
        prev = state.previous
        ratios = jnp.where(prev > 0, sums / jnp.where(prev > 0, prev, 1.0), 1.0)
        base = weights_from_cosines(cf, reg)
        tensioned = _tensioned(cf, base, cdtt_tensions(ratios, losses, alpha))
        ok = jnp.all(cf.alive)
        w = jnp.where((k >= WINDOW) & ok, tensioned, base)
        moved = state._replace(norms=norms, previous=jnp.where(k >= WINDOW - 1, sums, prev), step=k + 1)
        state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), moved, state)
        return w, state

    return weighted_method(weight_fn, name="cdtt", num_tasks=t, init_fn=init_fn, needs_losses=True)
