"""Task-axis helpers, the Gramian ``G = J J^T`` and the weighted combination ``J^T w``.

A *stacked pytree* of task gradients has, on every leaf, a leading task axis of
length ``T``: leaf ``(T, *param.shape)``. The Jacobian ``J`` is that pytree seen
as a ``T x P`` matrix. All reductions accumulate in float32 (whatever the leaf
dtype) with ``Precision.HIGHEST`` so TPUs do not silently use bfloat16 passes.

Two forms of the Gramian keep the methods exact whatever the gradient scales:

* :class:`ScaledGramian` ``(gram, scale)`` with ``G = scale**2 * gram`` and
  ``max diag(gram) = 1``: finite for gradients from 1e-30 to 1e30;
* :class:`CosineForm` ``(cos, norms, scale)``, ``G = scale**2 * N cos N`` with
  ``N = diag(norms)``: the cosine matrix has a unit diagonal whatever the
  norms, so the methods whose answer depends on the norms only through known
  factors (IMTL-G, Nash-MTL, ConFIG, MGDA, ...) solve a well-conditioned
  problem on ``cos`` and apply the norms afterwards. Task norms may then
  differ by up to ~1e17 in float32; a task whose norm is below
  ``1e-18`` times the largest counts as a zero gradient.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST
DEAD = 1e-18
"""Relative norm under which a task's gradient counts as zero in :func:`cosine_form`."""

# optax.MultiSteps is caught here by what it passes: when it traces its skip branch it
# calls the chain with its parameter-shaped accumulator
_PARTITION_HINT = (" If task-specific leaves hold plain gradients (value_and_jacobian(..., shared=mask)), "
                   "wrap the method in jaxmtl.partition(method, mask).")
_WRAPPER_HINT = (" If an optax wrapper feeds the method, replace it by one that keeps the task axis: "
                 "for optax.MultiSteps (it accumulates parameter-shaped gradients) Use "
                 "jaxmtl.multi_steps(tx, every_k, num_tasks=T); for optax.apply_if_finite (its rejected "
                 "step returns the stacked gradients) Use jaxmtl.skip_nonfinite(tx).")


def num_tasks(task_grads: Any, *, params: Any = None, losses: Any = None,
              expected: int | None = None) -> int:
    """Validates a stacked pytree and returns its number of tasks ``T``.

    Raises ``ValueError`` (at trace time: shapes are static) when a leaf has no
    task axis (e.g. plain gradients with the parameters' shapes), leaves
    disagree on ``T``, a leaf does not match ``(T, *param.shape)``, ``losses``
    is not of shape ``(T,)`` or ``T != expected``.
    """
    leaves = jax.tree_util.tree_leaves_with_path(task_grads)
    if not leaves:
        raise ValueError("task_grads has no leaves")
    if params is not None:
        _check_unstacked(leaves, task_grads, params)
        _check_mixed(leaves, task_grads, params)
    counts: dict[int, str] = {}
    for path, leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) == 0:
            raise ValueError(f"task_grads leaf {jax.tree_util.keystr(path)} is a scalar: every leaf "
                             "needs a leading task axis (T, *param.shape)." + _WRAPPER_HINT)
        counts.setdefault(shape[0], jax.tree_util.keystr(path))
    if len(counts) > 1:
        desc = ", ".join(f"{p} has {t}" for t, p in counts.items())
        raise ValueError(f"task_grads leaves disagree on the number of tasks: {desc}. Every leaf "
                         "needs a leading task axis (T, *param.shape); plain gradients have none."
                         + _PARTITION_HINT + _WRAPPER_HINT)
    (t,) = counts
    if params is not None:
        _check_params(task_grads, params, t)
    if losses is not None and jnp.shape(losses) != (t,):
        raise ValueError(f"losses has shape {jnp.shape(losses)} but task_grads has "
                         f"{t} tasks: expected shape ({t},)")
    if expected is not None and t != expected:
        raise ValueError(f"task_grads has {t} tasks but the method was built with "
                         f"num_tasks={expected}")
    return t


def _param_leaves(task_grads: Any, params: Any) -> list:
    treedef = jax.tree.structure(task_grads)
    try:
        return treedef.flatten_up_to(params)
    except (ValueError, TypeError) as err:
        raise ValueError(f"task_grads and params have different tree structures ({err})") from None


def _check_unstacked(leaves: list, task_grads: Any, params: Any) -> None:
    """Names the missing task axis when every leaf has exactly its parameter's shape."""
    param_leaves = _param_leaves(task_grads, params)
    if all(jnp.shape(g) == jnp.shape(p) for (_, g), p in zip(leaves, param_leaves)):
        path, g = leaves[0]
        raise ValueError(
            f"task_grads has no task axis: leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(g)}, "
            "the shape of its parameter. jaxmtl methods take per-task gradients stacked on a leading "
            "axis, (T, *param.shape), e.g. from jaxmtl.value_and_jacobian." + _WRAPPER_HINT)


def _check_mixed(leaves: list, task_grads: Any, params: Any) -> None:
    """Names :func:`jaxmtl.partition` when some leaves are stacked and others are plain gradients."""
    param_leaves = _param_leaves(task_grads, params)
    plain = [jax.tree_util.keystr(path) for (path, g), p in zip(leaves, param_leaves)
             if jnp.shape(g) == jnp.shape(p)]
    if plain and len(plain) < len(leaves):
        raise ValueError(
            f"task_grads mixes per-task gradients with plain gradients (leaves {', '.join(plain)} have their "
            "parameter's shape, no task axis), as value_and_jacobian(..., shared=mask) returns: wrap the "
            "method in jaxmtl.partition(method, mask) so it sees the shared leaves only and the others "
            "get their plain gradient.")


def _check_params(task_grads: Any, params: Any, t: int) -> None:
    leaves = jax.tree_util.tree_leaves_with_path(task_grads)
    for (path, g), p in zip(leaves, _param_leaves(task_grads, params)):
        gs, ps = jnp.shape(g), jnp.shape(p)
        if gs != (t, *ps):
            raise ValueError(f"task_grads leaf {jax.tree_util.keystr(path)} has shape {gs}; "
                             f"expected (T, *param.shape) = {(t, *ps)}")


def flatten_tasks(task_grads: Any) -> jax.Array:
    """The Jacobian as one ``(T, P)`` float32 matrix (materialises a copy)."""
    leaves = jax.tree.leaves(task_grads)
    t = jnp.shape(leaves[0])[0]
    return jnp.concatenate([jnp.reshape(x, (t, -1)).astype(jnp.float32) for x in leaves], axis=1)


def max_abs(task_grads: Any) -> jax.Array:
    """Largest absolute entry of the Jacobian (float32 scalar)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)).astype(jnp.float32)
                              for x in jax.tree.leaves(task_grads)]))


class ScaledGramian(NamedTuple):
    """A Gramian ``G = scale**2 * gram`` held so that it is finite for any gradient scale.

    Attributes:
      gram: ``f32[T, T]``, symmetric, largest diagonal entry 1 (0 for an all-zero ``G``).
      scale: ``f32[]``, the largest task-gradient norm (1 when all gradients are 0).
    """

    gram: jax.Array
    scale: jax.Array


def gramian(task_grads: Any) -> jax.Array:
    """``G[t, s] = <g_t, g_s>`` summed over leaves, float32 ``(T, T)``.

    Overflows for gradient entries beyond ~1e19; methods use :func:`scaled_gramian`.

    Examples:
      >>> import jax.numpy as jnp, jaxmtl
      >>> jaxmtl.gramian({"w": jnp.array([[3.0, 4.0], [2.0, 4.0]]), "b": jnp.array([[0.0], [1.0]])})
      Array([[25., 22.],
             [22., 21.]], dtype=float32)
    """
    g, scale = scaled_gramian(task_grads)
    return g * scale**2


def scaled_gramian(task_grads: Any) -> ScaledGramian:
    """The Gramian of a stacked pytree as a :class:`ScaledGramian`.

    Keeps ``G`` finite and non-zero for gradients from 1e-30 to 1e30 in float32
    and bfloat16. The products are first formed on the raw gradients (one
    matrix product per leaf, no pass over the Jacobian besides it); only when
    the largest diagonal entry of that raw Gramian is outside [1e-24, 1e30]
    (squares that overflowed or underflowed, or a reciprocal that XLA would
    flush to 0) are the gradients divided by their largest absolute entry first
    and the Gramian formed again, chosen at run time with ``lax.cond``. A
    reduction over the whole Jacobian is thus paid only for degenerate scales.
    """
    leaves = jax.tree.leaves(task_grads)
    raw = sum(_leaf_gram(x, None) for x in leaves)
    peak = jnp.max(jnp.diag(raw))
    safe = jnp.isfinite(peak) & (peak >= 1e-24) & (peak <= 1e30)  # 1/peak stays a normal float

    def rescaled():
        s0 = max_abs(task_grads)
        s0 = jnp.where(jnp.isfinite(s0) & (s0 > 0), s0, 1.0)
        g, s = _by_peak(sum(_leaf_gram(x, s0) for x in leaves))
        return g, s0 * s

    g, s = jax.lax.cond(safe, lambda: _by_peak(raw), rescaled)
    return ScaledGramian(0.5 * (g + g.T), s)


def _by_peak(g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(G / peak, sqrt(peak))`` with ``peak`` the largest diagonal entry (``(0, 1)`` if none)."""
    top = jnp.max(jnp.diag(g))
    ok = jnp.isfinite(top) & (top > 0)
    top = jnp.where(ok, top, 1.0)
    return jnp.where(ok, g / top, 0.0), jnp.sqrt(top)


def as_scaled(gramian: jax.Array | ScaledGramian) -> ScaledGramian:
    """A Gramian of any origin (a ``(T, T)`` array or a :class:`ScaledGramian`) in scaled form.

    An array that overflowed (inf entries) cannot be recovered: compute it with
    :func:`scaled_gramian` instead.
    """
    if isinstance(gramian, ScaledGramian):
        return gramian
    g = jnp.asarray(gramian, jnp.float32)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"a Gramian must be a square (T, T) matrix, got shape {g.shape}")
    g, s = _by_peak(0.5 * (g + g.T))
    return ScaledGramian(g, s)


class CosineForm(NamedTuple):
    """A Gramian as ``G = scale**2 * diag(norms) cos diag(norms)``.

    Attributes:
      cos: ``f32[T, T]``, the cosines between the task gradients; unit diagonal,
        and the identity's row and column for a zero gradient.
      norms: ``f32[T]``, the task-gradient norms divided by ``scale`` (largest 1), 0 for
        a zero gradient.
      alive: ``bool[T]``, the tasks whose gradient is not zero (``norms > DEAD``).
      scale: ``f32[]``, the largest task-gradient norm.
    """

    cos: jax.Array
    norms: jax.Array
    alive: jax.Array
    scale: jax.Array

    def from_units(self, v: jax.Array) -> jax.Array:
        """Weights ``w`` (on the last axis) with ``sum_t w_t g_t / scale = sum_t v_t u_t``
        (``u_t`` the unit gradients): ``v_t / norms_t``, 0 for zero gradients."""
        inv = jnp.where(self.alive, 1.0 / jnp.where(self.alive, self.norms, 1.0), 0.0)
        return v * inv


def cosine_form(gramian: jax.Array | ScaledGramian) -> CosineForm:
    """The :class:`CosineForm` of a Gramian of any origin."""
    g, scale = as_scaled(gramian)
    n = jnp.sqrt(jnp.maximum(jnp.diag(g), 0.0))
    alive = jnp.isfinite(n) & (n > DEAD)
    safe = jnp.where(alive, n, 1.0)
    cos = g / safe[:, None] / safe[None, :]   # two divisions: no product of two tiny norms
    both = alive[:, None] & alive[None, :]
    eye = jnp.eye(g.shape[0], dtype=jnp.float32)
    cos = jnp.where(both, jnp.clip(cos, -1.0, 1.0), 0.0)
    cos = jnp.where(eye > 0, 1.0, cos)
    return CosineForm(0.5 * (cos + cos.T), jnp.where(alive, n, 0.0), alive, scale)


def cross_gramian(a: Any, b: Any) -> jax.Array:
    """``A B^T`` for two stacked pytrees of the same structure (float32 ``(T, T)``)."""
    return sum(jnp.einsum("tp,sp->ts", jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32),
                          jnp.reshape(y, (y.shape[0], -1)).astype(jnp.float32), precision=_HIGHEST)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _leaf_gram(x: jax.Array, s: jax.Array | None) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
    if s is not None:
        x = x / s
    return jnp.einsum("tp,sp->ts", x, x, precision=_HIGHEST)


def task_grad_norms(task_grads: Any) -> jax.Array:
    """``|g_t|`` for every task, float32 ``(T,)``, without overflow for huge entries
    (``inf`` only when the norm itself exceeds float32's range)."""
    g, s = scaled_gramian(task_grads)
    return s * jnp.sqrt(jnp.maximum(jnp.diag(g), 0.0))


def update_dtype(dtype: Any) -> Any:
    """The dtype of an update computed from gradients of ``dtype``: the same for
    floating gradients, float32 for integer or boolean ones (never a truncated update)."""
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def combine(weights: jax.Array, task_grads: Any) -> Any:
    """``sum_t weights[t] * g_t`` on every leaf; float leaves keep their dtype
    (accumulated in float32), integer leaves give float32."""
    w = jnp.asarray(weights, jnp.float32)

    def leaf(x):
        y = jnp.tensordot(w, jnp.asarray(x).astype(jnp.float32), axes=1, precision=_HIGHEST)
        return y.astype(update_dtype(jnp.asarray(x).dtype))

    return jax.tree.map(leaf, task_grads)
