"""The generic task steps: Multi-Fashion's classification steps are one instance of them."""
import jax
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.data import classification_tasks
from jaxmtl.data.tasks import Task, higher_is_better, select
from jaxmtl.metrics import Metric, accuracy, cross_entropy, mae
from jaxmtl.models import MultiLeNet, shared_mask
from jaxmtl.training import (evaluate, evaluate_tasks, make_eval_step, make_task_eval_step, make_task_train_step,
                             make_train_step)


def test_multi_fashion_steps_are_the_task_steps_with_classification_tasks():
    rng = np.random.default_rng(0)
    batch = {"image": rng.random((4, 36, 36, 1), np.float32), "labels": rng.integers(0, 10, (4, 2)).astype(np.int32)}
    model = MultiLeNet()
    params = model.init(jax.random.PRNGKey(0), batch["image"])["params"]
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-2))
    tasks = classification_tasks(["top_left", "bottom_right"])
    old = make_train_step(model.apply, tx, shared=shared_mask)
    new = make_task_train_step(model.apply, tx, tasks, shared=shared_mask)
    p_old, s_old, key = params, tx.init(params), jax.random.PRNGKey(1)
    v_new, s_new = {"params": params}, tx.init(params)
    for _ in range(2):
        p_old, s_old, l_old = old(p_old, s_old, batch, key)
        v_new, s_new, l_new = new(v_new, s_new, batch, key)
        np.testing.assert_allclose(l_new, l_old, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), v_new["params"], p_old)
    batches = [jax.tree.map(lambda x: x[:2], batch), jax.tree.map(lambda x: x[2:], batch)]
    ref = evaluate(make_eval_step(model.apply), p_old, batches)
    got = evaluate_tasks(make_task_eval_step(model.apply, tasks), v_new, batches, tasks)
    np.testing.assert_allclose([got[t.name]["accuracy"] for t in tasks], ref["accuracy"])
    np.testing.assert_allclose([got[t.name]["loss"] for t in tasks], ref["loss"], rtol=1e-5)


def test_task_selection_and_errors():
    task = Task("y", cross_entropy, (accuracy(),), "labels", column=1, mask="labels_mask")
    target, mask = task.labels({"labels": np.array([[0, 1], [2, 3]]), "labels_mask": np.array([[1, 0], [1, 1]])})
    np.testing.assert_array_equal(target, [1, 3])
    np.testing.assert_array_equal(mask, [0, 1])
    assert task.labels({"labels": np.zeros((2, 2))})[1] is None          # no mask in the batch: all labelled
    with pytest.raises(ValueError, match="labels"):
        task.labels({"image": 0})
    assert select({"y": 1, "z": 2}, [task]) == [1]
    with pytest.raises(ValueError, match="lack"):
        select({"z": 2}, [task])
    with pytest.raises(ValueError, match="2 outputs for 1 tasks"):
        select((1, 2), [task])
    other = Task("z", cross_entropy, (mae(),), "labels")
    assert higher_is_better([task, other]) == {"accuracy": True, "mae": False}
    with pytest.raises(ValueError, match="accuracy"):
        higher_is_better([task, Task("w", cross_entropy, (Metric("accuracy", False, None, None),), "labels")])
    with pytest.raises(ValueError, match="no batches"):
        evaluate_tasks(None, None, [], [task])
