"""Jacobian cost and peak memory versus ``T`` for the full, shared-only and chunked modes."""
from __future__ import annotations

import jax

import jaxmtl
from benchmarks.common import median_time, mlp_as_layers, mlp_problem, peak_bytes, shared_mask

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


LAYERWISE = {"layer-wise, activations route": "activations", "layer-wise, parameters route": "parameters"}
"""The layer-wise Gramian path (:mod:`jaxmtl.layerwise`) on the MLP written as Dense layers."""


def _layerwise_fn(params, route: str):
    layers, head_loss, layered = mlp_as_layers(params)
    f = jaxmtl.layerwise_weighted_value_and_grad(layers, head_loss, jaxmtl.upgrad_weights, route=route,
                                                 stacked_heads=True)
    return (lambda p, x, y: f(p, x, y)[2]), layered


def run(tasks, repeats: int, log=print) -> list[dict]:
    rows = []
    for t in tasks:
        params, (x, y), losses = mlp_problem(t)
        ref = None
        cases = [(mode, gpath, _fn(losses, params, mode, gpath), params) for mode in MODES for gpath in (False, True)]
        cases += [(mode, True, *_layerwise_fn(params, route)) for mode, route in LAYERWISE.items()]
        for mode, gpath, fn, p in cases:
            sec = median_time(jax.jit(fn), p, x, y, repeats=repeats)
            ref = sec if ref is None else ref
            mem = peak_bytes(fn, p, x, y)
            what = "UPGrad via the Gramian path" if gpath else "Jacobian"
            rows.append({"T": t, "mode": mode, "what": what, "ms": 1e3 * sec, "ratio": sec / ref,
                         "mb": mem / 2**20})
            log(f"T={t:3d} {mode:30s} {what:28s} {1e3 * sec:8.1f} ms  x{sec / ref:5.2f}  "
                f"{mem / 2**20:8.1f} MiB")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| T | mode | computes | time (ms) | / full Jacobian | peak memory (MiB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['T']} | {r['mode']} | {r['what']} | {r['ms']:.1f} | {r['ratio']:.2f} | {r['mb']:.0f} |"
              for r in rows]
    return "\n".join(lines)
