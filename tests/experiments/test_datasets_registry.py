"""experiments.datasets: a few jitted training steps and an evaluation, end to end, on fake files
of each benchmark's layout (tiny models)."""
import jax
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

import jaxmtl
from experiments.datasets import DATASETS, MULTI_MNIST_TASKS, get, time_step
from jaxmtl.data import prefetch
from jaxmtl.data.multi_mnist import VAL_SIZE
from jaxmtl.data.tasks import higher_is_better
from jaxmtl.models import shared_mask
from jaxmtl.training import evaluate_tasks, make_task_eval_step, make_task_train_step
from tests.conftest import write_fake_fashion_mnist
from tests.fake_datasets import cityscapes_layout, fake_sources, nyuv2_layout


def load(name, tmp_path):
    if name == "multi_fashion":
        return get(name).load(write_fake_fashion_mnist(tmp_path), n_train=8, n_val=4, n_test=4)
    if name == "multi_mnist":   # MNIST's IDX files have Fashion-MNIST's names and format
        return get(name).load(write_fake_fashion_mnist(tmp_path, n_train=VAL_SIZE + 8, n_test=8, gz=False),
                              n_train=8, n_val=4, n_test=4)
    if name == "cityscapes":
        return get(name).load(cityscapes_layout(tmp_path, hw=(128, 256), n_train=5, n_val=2), val_fraction=0.4)
    if name == "nyuv2":
        return get(name).load(nyuv2_layout(tmp_path, hw=(288, 384), n_train=3, n_val=2), val_fraction=0.34)
    with tfds.testing.mock_data(as_data_source_fn=fake_sources(4)):
        return get(name).load()


FAST = [("multi_fashion", "multilenet")]   # the others compile for minutes on 2 CPU cores
SLOW = [(n, a) for n in sorted(DATASETS) for a in DATASETS[n].archs if (n, a) not in FAST]  # minutes on CPU


@pytest.mark.parametrize("name, arch", FAST + [pytest.param(n, a, marks=pytest.mark.slow) for n, a in SLOW])
def test_train_and_evaluate_end_to_end_on_fake_files(name, arch, tmp_path):
    bench = get(name)
    data = load(name, tmp_path)
    model, tasks = bench.model(data, arch, tiny=True), bench.tasks(data)
    assert len(tasks) == len(getattr(data, "tasks", MULTI_MNIST_TASKS))
    rng = np.random.default_rng(0)
    train = list(bench.batches(data.train, 2, rng))
    variables = model.init(jax.random.PRNGKey(0), train[0][bench.input_key])
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-3))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key=bench.input_key)
    opt_state = tx.init(variables["params"])
    for i, batch in enumerate(prefetch(train[:2])):
        variables, opt_state, losses = step(variables, opt_state, batch, jax.random.PRNGKey(i))
        assert losses.shape == (len(tasks),) and np.all(np.isfinite(losses))
    ev = make_task_eval_step(model.apply, tasks, input_key=bench.input_key)
    result = evaluate_tasks(ev, variables, bench.batches(data.val, 2, drop_last=False), tasks, bench.input_key)
    assert set(result) == {t.name for t in tasks}
    directions = higher_is_better(tasks)
    for task in tasks:
        assert set(result[task.name]) == {"loss", *task.higher_is_better}
        assert all(m in directions for m in task.higher_is_better)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="cityscapes"):
        get("imagenet")


@pytest.mark.slow
def test_step_timer():
    r = time_step("qm9", tiny=True, batch_size=2, steps=2)
    assert r["step_s"] > 0 and r["wait_for_batch_s"] >= 0
