"""Orbax run checkpoints: method states (keys, learned weights, typed NamedTuples) round-trip; a full disk."""
from __future__ import annotations

import errno
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.training.checkpoint import RunCheckpoint, generator_state, restore_generator

PARAMS = {"trunk": jnp.ones((3,)), "head": [jnp.ones((2,)), jnp.ones((2,))]}
SHARED = {"trunk": True, "head": False}


def chain():
    # a learned weighting (with its own Adam state), masked Adam leaves, then Adam
    return optax.chain(jaxmtl.partition(jaxmtl.uncertainty(num_tasks=2), SHARED, others=optax.scale_by_adam()),
                       optax.adam(1e-2))


def test_round_trip_and_resume_equals_an_uninterrupted_run(tmp_path):
    tx = chain()
    grads = {"trunk": jnp.asarray([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]),
             "head": [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])]}
    update = jax.jit(tx.update)

    def run(p, s, n):
        for _ in range(n):
            u, s = update(grads, s, p, losses=jnp.asarray([1.0, 2.0]))
            p = optax.apply_updates(p, u)
        return p, s

    p, s = run(PARAMS, tx.init(PARAMS), 3)
    ckpt = RunCheckpoint(tmp_path / "ckpt")
    assert ckpt.restore({"params": PARAMS, "opt_state": tx.init(PARAMS)}) is None
    rng = np.random.default_rng(5)
    rng.random(3)
    ckpt.save(3, {"params": p, "opt_state": s}, {"epoch": 3, "rng": generator_state(rng), "log": [1.5]})
    ckpt.close()

    arrays, host = RunCheckpoint(tmp_path / "ckpt").restore({"params": PARAMS, "opt_state": tx.init(PARAMS)})
    assert jax.tree.structure(arrays["opt_state"]) == jax.tree.structure(s)   # typed states intact
    jax.tree.map(np.testing.assert_array_equal, arrays, {"params": p, "opt_state": s})
    assert host["epoch"] == 3 and host["log"] == [1.5]
    np.testing.assert_array_equal(restore_generator(host["rng"]).random(4), rng.random(4))
    resumed = run(arrays["params"], arrays["opt_state"], 2)
    straight = run(p, s, 2)
    jax.tree.map(np.testing.assert_array_equal, resumed, straight)


def test_keeps_the_last_checkpoints(tmp_path):
    ckpt = RunCheckpoint(tmp_path / "c", max_to_keep=2)
    for step in range(4):
        ckpt.save(step, {"x": jnp.full(2, float(step))}, {"step": step})
    arrays, host = ckpt.restore({"x": jnp.zeros(2)})
    assert ckpt.latest_step() == 3 and host["step"] == 3
    np.testing.assert_array_equal(arrays["x"], 3.0)
    assert sorted(int(p.name) for p in (tmp_path / "c").iterdir() if p.name.isdigit()) == [2, 3]


def test_a_full_disk_raises_one_error_naming_the_checkpoint(tmp_path, monkeypatch, caplog):
    """Orbax's threads each fail and log; the save raises one ``ENOSPC`` naming its folder."""
    from etils import epath

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(epath.Path, "write_text", full)
    monkeypatch.setattr(epath.Path, "write_bytes", full)
    ckpt = RunCheckpoint(tmp_path / "ckpt")
    with pytest.raises(OSError) as info:
        ckpt.save(1, {"params": PARAMS}, {"epoch": 1})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "ckpt")
    assert not [r for r in caplog.records if r.name == "absl" and r.levelno >= logging.ERROR]
