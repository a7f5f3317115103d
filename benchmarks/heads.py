"""Shared-only Jacobians with and without the heads' ``T x T`` cost, against the trunk alone.

On the MLP of :func:`benchmarks.common.mlp_problem` (stacked linear heads), per ``T``:

* *trunk alone*: one forward pass and the trunk's ``T`` backward passes from given
  cotangents at the representation (the floor of any per-task Jacobian);
* *shared-only*: :func:`jaxmtl.value_and_jacobian` with the trunk mask (``T`` backward
  passes through the whole model, each through all ``T`` heads);
* *by heads*: :func:`jaxmtl.value_and_jacobian_by_heads` with ``stacked_heads=True`` (each
  head differentiated once, the heads as one vmap).

Every row uses ``chunk_size='auto'``; ratios are against the trunk alone.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import jaxmtl
from benchmarks.common import median_time, mlp_problem
from jaxmtl.jacobians import resolve_chunk

SHARED = {"trunk": True, "heads": False}


def encode(p, x, y):
    h = jax.nn.relu(x @ p["trunk"]["w1"] + p["trunk"]["b1"])
    return jax.nn.relu(h @ p["trunk"]["w2"] + p["trunk"]["b2"])


def head_loss(t, p, z, x, y):   # task t's slice of the stacked heads (stacked_heads=True)
    logits = z @ p["heads"]["w"] + p["heads"]["b"]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y[:, t]))


def trunk_alone(t):
    def fn(p, x, y):
        z, vjp = jax.vjp(lambda tr: encode(dict(p, trunk=tr), x, y), p["trunk"])
        cot = jnp.broadcast_to(z, (t, *z.shape)) * 1e-3
        chunk = resolve_chunk("auto", t)
        back = lambda c: vjp(c)[0]  # noqa: E731
        return jax.vmap(back)(cot) if chunk is None else jax.lax.map(back, cot, batch_size=chunk)
    return fn


def run(tasks, repeats: int, log=print) -> list[dict]:
    rows = []
    for t in tasks:
        params, (x, y), losses = mlp_problem(t)
        fns = {"trunk alone": trunk_alone(t),
               "shared-only": jaxmtl.value_and_jacobian(losses, shared=SHARED),
               "by heads": jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=t, shared=SHARED,
                                                              stacked_heads=True)}
        base = None
        for name, fn in fns.items():
            sec = median_time(jax.jit(fn), params, x, y, repeats=repeats)
            base = sec if base is None else base
            rows.append({"T": t, "path": name, "ms": 1e3 * sec, "ratio": sec / base})
            log(f"T={t:3d} {name:12s} {1e3 * sec:8.1f} ms  x{sec / base:5.2f}")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| T | path | time (ms) | / trunk alone |", "|---|---|---|---|"]
    lines += [f"| {r['T']} | {r['path']} | {r['ms']:.1f} | {r['ratio']:.2f} |" for r in rows]
    return "\n".join(lines)
