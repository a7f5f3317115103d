"""Jacobian cost and peak memory versus ``T`` for the full, shared-only and chunked modes."""
from __future__ import annotations

import jax

import jaxmtl
from benchmarks.common import median_time, mlp_problem, peak_bytes, shared_mask

MODES = {
    "full, one vmap": dict(shared=None, chunk_size=None),
    "shared-only, one vmap": dict(shared="mask", chunk_size=None),
    "shared-only, chunks of 8": dict(shared="mask", chunk_size=8),
    "shared-only, chunks of 2": dict(shared="mask", chunk_size=2),
}


def _fn(losses, params, mode, gramian_path: bool):
    kw = dict(MODES[mode])
    kw["shared"] = shared_mask(params) if kw["shared"] == "mask" else None
    if gramian_path:
        f = jaxmtl.weighted_value_and_grad(losses, jaxmtl.upgrad_weights, **kw)
        return lambda p, x, y: f(p, x, y)[2]
    f = jaxmtl.value_and_jacobian(losses, **kw)
    return lambda p, x, y: f(p, x, y)[1]


def run(tasks, repeats: int, log=print) -> list[dict]:
    rows = []
    for t in tasks:
        params, (x, y), losses = mlp_problem(t)
        ref = None
        for mode in MODES:
            for gpath in (False, True):
                fn = _fn(losses, params, mode, gpath)
                sec = median_time(jax.jit(fn), params, x, y, repeats=repeats)
                ref = sec if ref is None else ref
                mem = peak_bytes(fn, params, x, y)
                what = "UPGrad via the Gramian path" if gpath else "Jacobian"
                rows.append({"T": t, "mode": mode, "what": what, "ms": 1e3 * sec, "ratio": sec / ref,
                             "mb": mem / 2**20})
                log(f"T={t:3d} {mode:26s} {what:28s} {1e3 * sec:8.1f} ms  x{sec / ref:5.2f}  "
                    f"{mem / 2**20:8.1f} MiB")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| T | mode | computes | time (ms) | / full Jacobian | peak memory (MiB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['T']} | {r['mode']} | {r['what']} | {r['ms']:.1f} | {r['ratio']:.2f} | {r['mb']:.0f} |"
              for r in rows]
    return "\n".join(lines)
