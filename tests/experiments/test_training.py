"""delta-m conventions, the crash-safe result store, and the jitted train step."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl
from experiments.optimizers import make_optimizer
from jaxmtl.data import batches, make_multi_fashion
from jaxmtl.models import MultiLeNet, shared_mask
from jaxmtl.training import (ResultStore, atomic_write, classification_losses, delta_m, evaluate,
                             make_eval_step, make_train_step)

HIGHER = {"acc": True, "err": False}


def test_delta_m_by_hand():
    base = {"a": {"acc": 0.8, "err": 2.0}, "b": {"acc": 0.5}}
    res = {"a": {"acc": 0.88, "err": 1.0}, "b": {"acc": 0.45}}
    # metric changes: acc_a +10% (better), err_a -50% (better), acc_b -10% (worse)
    assert delta_m(res, base, HIGHER, "metric") == pytest.approx((-10 - 50 + 10) / 3)
    # per task: a -> (10 + 50)/2 = 30, b -> -10; mean = 10
    assert delta_m(res, base, HIGHER, "task") == pytest.approx(10.0)
    assert delta_m(base, base, HIGHER) == 0.0


@pytest.mark.parametrize("bad, match", [
    ({"c": {"acc": 1.0}}, "no baseline for task"),
    ({"a": {"f1": 1.0}}, "direction of metric 'f1'"),
    ({"a": {"err": 1.0}}, "no baseline for metric"),
])
def test_delta_m_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        delta_m(bad, {"a": {"acc": 1.0}}, HIGHER)
    with pytest.raises(ValueError, match="convention"):
        delta_m({"a": {"acc": 1.0}}, {"a": {"acc": 1.0}}, HIGHER, "paper")


def test_result_store_resumes_and_skips_torn_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    store.add({"key": "a", "v": 1})
    store.add({"key": "b", "v": 2})
    with open(path, "a") as f:
        f.write('{"key": "c", "v"')  # a torn line, as a kill mid-write would leave
    again = ResultStore(path)
    assert "a" in again and "b" in again and "c" not in again and again.skipped_lines == 1
    again.add({"key": "c", "v": 3})
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="key"):
        again.add({"v": 4})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write(tmp_path / "x" / "f.txt", "hello")
    atomic_write(tmp_path / "x" / "f.txt", b"bytes")
    assert (tmp_path / "x" / "f.txt").read_bytes() == b"bytes"
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["f.txt"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_gives_files_the_mode_of_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "f.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == mode


def test_classification_losses():
    logits = jnp.zeros((2, 4, 10))
    np.testing.assert_allclose(classification_losses(logits, jnp.zeros((4, 2), jnp.int32)), np.log(10), rtol=1e-6)


@pytest.mark.parametrize("method", [jaxmtl.linear(), jaxmtl.upgrad()])
def test_train_step_learns_on_a_fixed_batch(fake_fashion, method):
    data = make_multi_fashion(fake_fashion, n_train=32, n_val=16, n_test=16)
    model = MultiLeNet()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 36, 36, 1)))["params"]
    tx = make_optimizer("adam", 3e-3, method, num_tasks=2, shared=shared_mask)
    state = tx.init(params)
    step = make_train_step(model.apply, tx, shared=shared_mask)
    batch = next(batches(data.train, 32, np.random.default_rng(0)))
    first = None
    for i in range(40):
        params, state, losses = step(params, state, batch, jax.random.PRNGKey(i))
        first = losses if first is None else first
    assert np.all(np.asarray(losses) < 0.5 * np.asarray(first))
    ev = evaluate(make_eval_step(model.apply), params, [batch])
    assert min(ev["accuracy"]) > 0.5 and len(ev["loss"]) == 2


def test_single_task_step_leaves_other_head_untouched(fake_fashion):
    data = make_multi_fashion(fake_fashion, n_train=16, n_val=16, n_test=16)
    model = MultiLeNet()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 36, 36, 1)))["params"]
    tx = make_optimizer("adam", 1e-2, jaxmtl.linear(), num_tasks=1, shared=shared_mask)
    step = make_train_step(model.apply, tx, shared=shared_mask, tasks=(1,))
    new, _, losses = step(params, tx.init(params), next(batches(data.train, 16)), jax.random.PRNGKey(0))
    assert losses.shape == (1,)
    jax.tree.map(np.testing.assert_array_equal, new["head_0"], params["head_0"])
    assert not np.allclose(new["head_1"]["Dense_0"]["kernel"], params["head_1"]["Dense_0"]["kernel"])
