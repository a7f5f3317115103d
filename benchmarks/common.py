"""Shared pieces of the benchmarks: timing, machine description, the two problems, methods."""
from __future__ import annotations

import os
import platform
import statistics
import time

import functools

import jax
import jax.numpy as jnp
import optax

from jaxmtl import registry

METHODS = ["ew", "mgda", "pcgrad", "upgrad", "dualproj", "imtl_g", "aligned_mtl", "con_fig",
           "cagrad", "nash_mtl", "fairgrad", "graddrop", "gradvac", "moco", "db_mtl", "excess_mtl",
           "sdmgrad", "modo"]
"""The methods timed by default: EW and every gradient aggregator (any registry name is accepted)."""
EXTRA_BATCHES = {m.name for m in registry.entries() if m.extra_batches}


def _weighting(m: registry.MethodInfo):
    fn = functools.partial(m.weights, **m.kwargs)
    return (lambda g: fn(g, jax.random.PRNGKey(0))) if m.random else fn


WEIGHTINGS = {m.name: _weighting(m) for m in registry.entries(kind="gramian")
              if m.name != "gradvac" and not m.needs_losses}
"""The registry's Gramian weightings, timed alone and used by the Gramian-only path (PCGrad
with a fixed key; not GradVac, which needs its targets, nor those that need the losses)."""


def make_method(name: str, t: int):
    """The registry's method ``name`` for ``t`` tasks."""
    return registry.build(name, num_tasks=t)


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


def mlp_as_layers(params):
    """The MLP of :func:`mlp_problem` as a chain of layers for :mod:`jaxmtl.layerwise`:
    ``(layers, head_loss, layered_params)``, ``head_loss`` in the ``stacked_heads`` form."""
    from jaxmtl.layerwise import Dense

    trunk = params["trunk"]
    layers = (Dense(), jax.nn.relu, Dense(), jax.nn.relu)
    layered = {"trunk": [{"w": trunk["w1"], "b": trunk["b1"]}, (), {"w": trunk["w2"], "b": trunk["b2"]}, ()],
               "heads": params["heads"]}

    def head_loss(t, head, h, y):  # stacked heads: task t's loss from its own head
        logits = h @ head["w"] + head["b"]
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y[:, t]))

    return layers, head_loss, layered


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
