"""Shared pieces of the benchmarks: timing, machine description, the two problems, methods."""
from __future__ import annotations

import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
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
"""Gramian weightings (stateless), timed alone and used by the Gramian-only path."""
METHODS = ["linear", "mgda", "pcgrad", "upgrad", "dualproj", "imtl_g", "aligned_mtl", "config",
           "cagrad", "nash_mtl", "fairgrad", "graddrop", "gradvac", "moco", "db_mtl", "excess_mtl",
           "sdmgrad", "modo"]


def make_method(name: str, t: int):
    """The optax transformation ``jaxmtl.<name>`` with its defaults (``num_tasks`` where needed)."""
    factory = getattr(jaxmtl, name)
    return factory(num_tasks=t) if name in NEEDS_T else factory()


def median_time(fn, *args, repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls after one warm-up call (compilation).

    The timed calls run under ``jax.transfer_guard('disallow')``: a step that
    moved data between host and device (a host callback, a NumPy constant
    created per call) raises instead of being timed.
    """
    args = jax.device_put(args)
    jax.block_until_ready(fn(*args))
    times = []
    with jax.transfer_guard("disallow"):
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(fn, *args) -> int:
    """XLA's static memory estimate of a jitted call: arguments + outputs + temporaries."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return -1
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def machine() -> str:
    """One line naming the machine, the device and the library versions."""
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} CPU cores; {jax.device_count()} x {dev.device_kind} "
            f"({jax.default_backend()}); jax {jax.__version__}, optax {optax.__version__}, "
            f"Python {platform.python_version()}")


def mlp_problem(t: int, batch: int = 256, seed: int = 0):
    """MLP trunk 1296-512-512 (ReLU) with ``t`` linear 10-class heads: ``(params, (x, y), losses)``."""
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


def lenet_problem(t: int = 2, batch: int = 256, seed: int = 0):
    """The Multi-Fashion MultiLeNet (36x36 inputs, ``t`` heads): ``(params, (x, y), losses)``."""
    from jaxmtl.models import MultiLeNet  # Flax: imported only for this problem
    from jaxmtl.training.steps import classification_losses

    model = MultiLeNet(num_tasks=t)
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = jax.random.uniform(k[0], (batch, 36, 36, 1))
    y = jax.random.randint(k[1], (batch, t), 0, 10)
    params = model.init(k[2], x[:1])["params"]

    def losses(p, x, y):
        return classification_losses(model.apply({"params": p}, x), y)

    return params, (x, y), losses


def shared_mask(params):
    """The shared-parameter mask of either problem (``trunk`` / ``encoder``)."""
    return {k: k in ("trunk", "encoder") for k in params}
