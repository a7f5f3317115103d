"""Data-parallel training on 8 (fake CPU) devices equals training on one, for every method family.

The device count is fixed when JAX starts, so the check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import pytest

import jaxmtl
from tests.conftest import device_env

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, jaxmtl
    from jaxmtl import sharding
    assert jax.device_count() == 8, jax.devices()
    T, B = 3, 32
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {"trunk": 0.3 * jax.random.normal(k[0], (6, 16)), "heads": 0.3 * jax.random.normal(k[1], (T, 16))}
    shared = {"trunk": True, "heads": False}
    x = jax.random.normal(k[2], (5, B, 6))              # 5 batches
    y = jax.random.normal(k[3], (5, B, T))

    def loss_fn(p, batch):
        h = jnp.tanh(batch["x"] @ p["trunk"])
        return jnp.mean((h @ p["heads"].T - batch["y"]) ** 2, axis=0) + 0.1

    grads = jaxmtl.value_and_jacobian(loss_fn, shared=shared)
    FAMILIES = {  # Gramian, random (key in state), learned loss weights, tracked gradients, extra batches
        "upgrad": {}, "pcgrad": {}, "nash_mtl": {"warm_start": True}, "uncertainty": {}, "famo": {},
        "moco": {}, "graddrop": {}, "cagrad": {},
        # SDMGrad's default lr = 5 amplifies round-off (another summation order) to ~1e-3
        "sdmgrad": {"lr": 0.5, "num_iters": 50},
    }
    bad = []
    mesh = sharding.data_mesh()
    for name, kw in FAMILIES.items():
        info = jaxmtl.registry.get(name)
        owners = {"trunk": -1, "heads": 0} if info.kind == "loss" else None
        tx = optax.chain(jaxmtl.partition(info.build(T, **kw), shared), optax.adam(1e-2))

        def step(p, s, batch):
            losses, g = grads(p, batch)
            extra = {"extra_task_grads": (g, g)} if info.extra_batches else {}
            u, s = tx.update(g, s, p, losses=losses, **extra)
            return optax.apply_updates(p, u), s, losses

        results = []
        for parallel in (False, True):
            p, s = params, tx.init(params)
            run = sharding.data_parallel(step, mesh) if parallel else jax.jit(step)
            if parallel:
                p, s = sharding.replicate((p, s), mesh)
            for i in range(5):
                batch = {"x": x[i], "y": y[i]}
                p, s, losses = run(p, s, sharding.shard_batch(batch, mesh) if parallel else batch)
            results.append((p, s))
        (p1, s1), (p8, s8) = results
        try:
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), p1, p8)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6), s1, s8)
            for leaf in jax.tree.leaves(s8) + jax.tree.leaves(p8):   # replicated, identical everywhere
                assert leaf.sharding.is_fully_replicated, leaf.sharding
                shards = [np.asarray(sh.data) for sh in leaf.addressable_shards]
                assert all(np.array_equal(shards[0], other) for other in shards[1:])
        except AssertionError as err:
            bad.append(f"{name}: {' '.join(str(err).split())[:400]}")
    print("\\n".join(bad) or "ok")
""")


def test_sharded_training_matches_one_device_for_every_method_family():
    root = Path(__file__).resolve().parents[2]
    env = device_env(8)
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok", out.stdout


def test_uneven_batches_and_missing_devices_are_clear_errors():
    mesh = jaxmtl.sharding.data_mesh(1)
    assert jaxmtl.sharding.shard_batch({"x": jnp.ones((3, 2))}, mesh)["x"].shape == (3, 2)
    with pytest.raises(ValueError, match="asked for 64 devices"):
        jaxmtl.sharding.data_mesh(64)
    with pytest.raises(ValueError, match="cannot be split"):
        jaxmtl.sharding.shard_batch({"x": jnp.ones(())}, mesh)
