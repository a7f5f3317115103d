"""Method overhead: the full jitted train step of every method, as ratios in one process.

Baselines: the EW step (one backward pass of ``sum_t L_t``, no Jacobian) and the
bare Jacobian + mean step (``value_and_jacobian`` of the shared parameters, then
``linear(reduction='mean')``). For the Gramian weightings the Gramian-only path
(:func:`jaxmtl.weighted_value_and_grad`: ``G``, weights, one more backward pass)
is timed too.
"""
from __future__ import annotations

import jax
import optax

import jaxmtl
from benchmarks.common import (EXTRA_BATCHES, WEIGHTINGS, make_method, median_time, shared_mask)


def _adam_step(grads_fn, params):
    tx = optax.adam(1e-3)

    @jax.jit
    def step(params, state, x, y):
        grads = grads_fn(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step, tx.init(params)


def ew_step(losses, params):
    """EW: one backward pass of the summed losses, then Adam."""
    return _adam_step(jax.grad(lambda p, x, y: losses(p, x, y).sum()), params)


def gramian_path_step(losses, params, weighting):
    """The Gramian-only path with ``weighting``, then Adam."""
    fn = jaxmtl.weighted_value_and_grad(losses, weighting, shared=shared_mask(params))
    return _adam_step(lambda p, x, y: fn(p, x, y)[2], params)


def method_step(losses, params, name: str, t: int):
    """Jacobian of the shared leaves, ``jaxmtl.<name>`` under ``partition``, Adam."""
    shared = shared_mask(params)
    method = make_method(name, t)
    tx = optax.chain(jaxmtl.partition(method, shared), optax.adam(1e-3))
    grads_fn = jaxmtl.value_and_jacobian(losses, shared=shared)

    @jax.jit
    def step(params, state, x, y):
        value, g = grads_fn(params, x, y)
        extra = {"extra_task_grads": (g, g)} if name in EXTRA_BATCHES else {}
        updates, state = tx.update(g, state, params, losses=value, **extra)
        return optax.apply_updates(params, updates), state

    return step, tx.init(params)


def run(problems, methods, repeats: int, log=print) -> list[dict]:
    """``problems``: ``(label, t, (params, (x, y), losses))`` triples."""
    rows = []
    for label, t, (params, (x, y), losses) in problems:
        timed = lambda made: median_time(made[0], params, made[1], x, y, repeats=repeats)
        ew = timed(ew_step(losses, params))
        base = timed(method_step(losses, params, "mean", t))
        log(f"{label} T={t}: EW {1e3 * ew:.1f} ms, Jacobian+mean {1e3 * base:.1f} ms")
        for name in methods:
            step = timed(method_step(losses, params, name, t))
            gpath = timed(gramian_path_step(losses, params, WEIGHTINGS[name])) if name in WEIGHTINGS else None
            rows.append({"problem": label, "T": t, "method": name, "step_ms": 1e3 * step,
                         "vs_ew": step / ew, "vs_jac": step / base,
                         "gpath_ms": None if gpath is None else 1e3 * gpath,
                         "gpath_vs_jac": None if gpath is None else gpath / base})
            g_txt = "" if gpath is None else f"  Gramian path {1e3 * gpath:.1f} ms (x{gpath / base:.2f})"
            log(f"  {name:12s} {1e3 * step:8.1f} ms  x{step / ew:5.2f} EW  x{step / base:5.2f} "
                f"Jacobian+mean{g_txt}")
    return rows


def markdown(rows: list[dict]) -> str:
    fmt = lambda v, p=2: "-" if v is None else f"{v:.{p}f}"
    lines = ["| problem | T | method | step (ms) | / EW step | / Jacobian+mean step "
             "| Gramian path (ms) | Gramian path / Jacobian+mean |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['problem']} | {r['T']} | {r['method']} | {r['step_ms']:.1f} | {r['vs_ew']:.2f} | "
              f"{r['vs_jac']:.2f} | {fmt(r['gpath_ms'], 1)} | {fmt(r['gpath_vs_jac'])} |" for r in rows]
    return "\n".join(lines)
