"""Benchmarks: method overhead, as ratios against a baseline run in the same process.

    python -m jaxmtl.bench [--tasks 2 10 40] [--methods upgrad mgda ...] [--repeats 20]
                           [--out benchmarks/RESULTS.md]

For every method and task count ``T`` it reports

* the weighting alone on a fixed random ``T x T`` Gramian (jitted, median time),
* the full jitted train step (per-task Jacobian of the shared trunk, the method
  under :func:`jaxmtl.partition`, Adam, parameter update) on an MLP trunk
  (1296-512-512, ReLU) with ``T`` linear 10-class heads, batch 256, and its ratio
  to the same step with the mean of the Jacobian (``linear(reduction='mean')``),

and writes a Markdown table with the machine and versions. Timings are
medians of ``--repeats`` runs after a warm-up (compilation excluded). SDMGrad
and MoDo get the main batch's Jacobian as their two extra batches, so their
rows measure the aggregation only, not the two extra backward passes they need.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl

NEEDS_T = {"gradvac", "moco", "db_mtl", "excess_mtl", "sdmgrad", "modo"}
EXTRA_BATCHES = {"sdmgrad", "modo"}
WEIGHTINGS = {
    "mgda": jaxmtl.mgda_weights, "upgrad": jaxmtl.upgrad_weights, "dualproj": jaxmtl.dualproj_weights,
    "imtl_g": jaxmtl.imtl_g_weights, "aligned_mtl": jaxmtl.aligned_mtl_weights,
    "config": jaxmtl.config_weights, "cagrad": jaxmtl.cagrad_weights,
    "nash_mtl": jaxmtl.nash_mtl_weights, "fairgrad": jaxmtl.fairgrad_weights,
    "pcgrad": lambda g: jaxmtl.pcgrad_weights(g, jax.random.PRNGKey(0)),
}
METHODS = ["linear", "mgda", "pcgrad", "upgrad", "dualproj", "imtl_g", "aligned_mtl", "config",
           "cagrad", "nash_mtl", "fairgrad", "graddrop", "gradvac", "moco", "db_mtl", "excess_mtl",
           "sdmgrad", "modo"]


def make_method(name: str, t: int):
    factory = getattr(jaxmtl, name)
    return factory(num_tasks=t) if name in NEEDS_T else factory()


def median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mlp_problem(t: int, batch: int = 256, seed: int = 0):
    """Parameters, a batch and the task losses of the MLP benchmark model."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    init = lambda key, shape: jax.random.normal(key, shape) * jnp.sqrt(2.0 / shape[0])
    params = {"trunk": {"w1": init(k[0], (1296, 512)), "b1": jnp.zeros(512),
                        "w2": init(k[1], (512, 512)), "b2": jnp.zeros(512)},
              "heads": {"w": init(k[2], (t, 512, 10)), "b": jnp.zeros((t, 10))}}
    x = jax.random.normal(k[3], (batch, 1296))
    y = jax.random.randint(k[4], (batch, t), 0, 10)

    def losses(p, x, y):
        h = jax.nn.relu(x @ p["trunk"]["w1"] + p["trunk"]["b1"])
        h = jax.nn.relu(h @ p["trunk"]["w2"] + p["trunk"]["b2"])
        logits = jnp.einsum("bf,tfc->tbc", h, p["heads"]["w"]) + p["heads"]["b"][:, None]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y.T), axis=1)

    return params, (x, y), losses


def step_fn(name: str, t: int, losses):
    shared = {"trunk": True, "heads": False}
    method = jaxmtl.linear(reduction="mean") if name == "mean" else make_method(name, t)
    tx = optax.chain(jaxmtl.partition(method, shared), optax.adam(1e-3))
    grads_fn = jaxmtl.value_and_jacobian(losses, shared=shared)

    @jax.jit
    def step(params, state, x, y):
        value, g = grads_fn(params, x, y)
        extra = {}
        if name in EXTRA_BATCHES:
            extra["extra_task_grads"] = (g, g)
        updates, state = tx.update(g, state, params, losses=value, **extra)
        return optax.apply_updates(params, updates), state

    return step, tx


def run(tasks, methods, repeats: int) -> list[dict]:
    rows = []
    for t in tasks:
        params, (x, y), losses = mlp_problem(t)
        step, tx = step_fn("mean", t, losses)
        base = median_time(step, params, tx.init(params), x, y, repeats=repeats)
        a = np.random.default_rng(t).normal(size=(t, 64)).astype(np.float32)
        gram = jnp.asarray(a @ a.T)
        for name in methods:
            weighting = WEIGHTINGS.get(name)
            w_time = median_time(jax.jit(weighting), gram, repeats=repeats) if weighting else None
            step, tx = step_fn(name, t, losses)
            s_time = median_time(step, params, tx.init(params), x, y, repeats=repeats)
            rows.append({"T": t, "method": name, "weighting_ms": None if w_time is None else 1e3 * w_time,
                         "step_ms": 1e3 * s_time, "ratio": s_time / base, "base_ms": 1e3 * base})
            w_txt = "       -" if w_time is None else f"{1e3 * w_time:8.3f}"
            print(f"T={t:3d} {name:12s} weighting {w_txt} ms  step {1e3 * s_time:8.1f} ms  "
                  f"x{s_time / base:5.2f} of mean-of-Jacobian ({1e3 * base:.1f} ms)", flush=True)
    return rows


def markdown(rows: list[dict], repeats: int) -> str:
    dev = jax.devices()[0]
    head = (f"# jaxmtl method overhead\n\nMachine: {platform.machine()}, {platform.processor() or '?'}, "
            f"{jax.device_count()} x {dev.device_kind} ({jax.default_backend()}); "
            f"jax {jax.__version__}, optax {optax.__version__}, Python {platform.python_version()}.\n"
            f"MLP trunk 1296-512-512 with T linear heads, batch 256, Adam; shared-only Jacobian; "
            f"median of {repeats} jitted steps after warm-up.\n\n"
            "| T | method | weighting on a fixed Gramian (ms) | step (ms) | step / mean-of-Jacobian step |\n"
            "|---|---|---|---|---|\n")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    lines = [f"| {r['T']} | {r['method']} | {fmt(r['weighting_ms'])} | {r['step_ms']:.1f} | {r['ratio']:.2f} |"
             for r in rows]
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="jaxmtl method-overhead benchmark")
    parser.add_argument("--tasks", nargs="+", type=int, default=[2, 10, 40])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    rows = run(args.tasks, args.methods, args.repeats)
    text = markdown(rows, args.repeats)
    print(text)
    if args.out:
        from jaxmtl.training.results import atomic_write

        atomic_write(Path(args.out), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
