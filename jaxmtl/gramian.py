"""Task-axis helpers, the Gramian ``G = J J^T`` and the weighted combination ``J^T w``.

A *stacked pytree* of task gradients has, on every leaf, a leading task axis of
length ``T``: leaf ``(T, *param.shape)``. The Jacobian ``J`` is that pytree seen
as a ``T x P`` matrix. All reductions accumulate in float32 (whatever the leaf
dtype) with ``Precision.HIGHEST`` so TPUs do not silently use bfloat16 passes.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


def num_tasks(task_grads: Any, *, params: Any = None, losses: Any = None,
              expected: int | None = None) -> int:
    """Validates a stacked pytree and returns its number of tasks ``T``.

    Raises ``ValueError`` (at trace time: shapes are static) when a leaf has no
    task axis, leaves disagree on ``T``, a leaf does not match ``(T, *param.shape)``,
    ``losses`` is not of shape ``(T,)`` or ``T != expected``.
    """
    leaves = jax.tree_util.tree_leaves_with_path(task_grads)
    if not leaves:
        raise ValueError("task_grads has no leaves")
    counts = {}
    for path, leaf in leaves:
        shape = jnp.shape(leaf)
        if len(shape) == 0:
            raise ValueError(f"task_grads leaf {jax.tree_util.keystr(path)} is a scalar: "
                             "every leaf needs a leading task axis")
        counts.setdefault(shape[0], jax.tree_util.keystr(path))
    if len(counts) > 1:
        desc = ", ".join(f"{p} has {t}" for t, p in counts.items())
        raise ValueError(f"task_grads leaves disagree on the number of tasks: {desc}")
    (t,) = counts
    if params is not None:
        _check_params(task_grads, params, t)
    if losses is not None:
        if jnp.shape(losses) != (t,):
            raise ValueError(f"losses has shape {jnp.shape(losses)} but task_grads has "
                             f"{t} tasks: expected shape ({t},)")
    if expected is not None and t != expected:
        raise ValueError(f"task_grads has {t} tasks but the method was built with "
                         f"num_tasks={expected}")
    return t


def _check_params(task_grads: Any, params: Any, t: int) -> None:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(task_grads)
    try:
        param_leaves = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as err:
        raise ValueError(f"task_grads and params have different tree structures ({err})") from None
    for (path, g), p in zip(leaves, param_leaves):
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


def gramian(task_grads: Any) -> jax.Array:
    """``G[t, s] = <g_t, g_s>`` summed over leaves, float32 ``(T, T)``.

    May overflow for entries beyond ~1e19; methods use :func:`scaled_gramian`.
    """
    g, scale = scaled_gramian(task_grads)
    return g * scale**2


def scaled_gramian(task_grads: Any) -> tuple[jax.Array, jax.Array]:
    """``(G / s**2, s)`` with ``s`` the largest task-gradient norm (1 when all are 0).

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
    return 0.5 * (g + g.T), s


def _by_peak(g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(G / peak, sqrt(peak))`` with ``peak`` the largest diagonal entry (``(0, 1)`` if none)."""
    top = jnp.max(jnp.diag(g))
    ok = jnp.isfinite(top) & (top > 0)
    top = jnp.where(ok, top, 1.0)
    return jnp.where(ok, g / top, 0.0), jnp.sqrt(top)


def scale_gramian(g: jax.Array, t: int) -> tuple[jax.Array, jax.Array]:
    """A user-given ``(T, T)`` Gramian in the ``(G / s**2, s)`` form of :func:`scaled_gramian`."""
    g = jnp.asarray(g, jnp.float32)
    if g.shape != (t, t):
        raise ValueError(f"gramian has shape {g.shape}; expected ({t}, {t}) for {t} tasks")
    s = jnp.sqrt(jnp.max(jnp.abs(jnp.diag(g))))
    s = jnp.where(jnp.isfinite(s) & (s > 0), s, 1.0)
    g = g / s**2
    return 0.5 * (g + g.T), s


def cross_gramian(a: Any, b: Any) -> jax.Array:
    """``A B^T`` for two stacked pytrees of the same structure (float32 ``(T, T)``)."""
    return sum(jnp.einsum("tp,sp->ts", jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32),
                          jnp.reshape(y, (y.shape[0], -1)).astype(jnp.float32), precision=_HIGHEST)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def task_norms(gram: jax.Array) -> jax.Array:
    """Gradient norms ``sqrt(diag(G))`` (clipped at 0 against round-off)."""
    return jnp.sqrt(jnp.maximum(jnp.diag(gram), 0.0))


def _leaf_gram(x: jax.Array, s: jax.Array | None) -> jax.Array:
    x = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
    if s is not None:
        x = x / s
    return jnp.einsum("tp,sp->ts", x, x, precision=_HIGHEST)


def task_grad_norms(task_grads: Any) -> jax.Array:
    """``|g_t|`` for every task, float32 ``(T,)``, without overflow for huge entries
    (``inf`` only when the norm itself exceeds float32's range)."""
    g, s = scaled_gramian(task_grads)
    return s * task_norms(g)


def require_num_tasks(num_tasks: int | None, name: str, why: str) -> int:
    """Validates the ``num_tasks`` argument of a method whose state depends on ``T``."""
    if num_tasks is None or int(num_tasks) < 1:
        raise ValueError(f"{name} needs num_tasks >= 1 ({why}), got {num_tasks!r}")
    return int(num_tasks)


def combine(weights: jax.Array, task_grads: Any) -> Any:
    """``sum_t weights[t] * g_t`` on every leaf; the result keeps each leaf's dtype."""
    w = jnp.asarray(weights, jnp.float32)

    def leaf(x):
        y = jnp.tensordot(w, x.astype(jnp.float32), axes=1, precision=_HIGHEST)
        return y.astype(x.dtype)

    return jax.tree.map(leaf, task_grads)


def normalize_gramian(g: jax.Array, eps: float = 1e-12) -> jax.Array:
    """``G / trace(G)`` (zero when the trace is below ``eps``), symmetrised, float32."""
    g = jnp.asarray(g, jnp.float32)
    g = 0.5 * (g + g.T)
    tr = jnp.trace(g)
    ok = jnp.isfinite(tr) & (tr > eps)
    return jnp.where(ok, g / jnp.where(ok, tr, 1.0), jnp.zeros_like(g))
