"""Paper C's protocol pieces against closed forms: UW's per-task form, FAMO's same-batch losses,
the single-task reference rule, the mean rank and the official model's heads."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from experiments.paper_c.report import mean_ranks
from experiments.selection import stl_baselines
from jaxmtl.data import classification_tasks
from jaxmtl.models import MixedLeNet, shared_mask
from jaxmtl.training import make_task_train_step


def test_uw_per_task_form_step_and_fixed_point():
    losses, powers, divisors = jnp.array([0.5, 2.0]), [2.0, 2.0], [1.0, 2.0]
    grads = jnp.ones((2, 3))
    tx = jaxmtl.uncertainty(powers=powers, divisors=divisors, optimizer=optax.sgd(0.1), num_tasks=2)
    state = tx.init(None)
    update, state = tx.update(grads, state, losses=losses)
    # eta = 0: w = 1 / f, and one SGD step on d/deta = 1 - p L w
    np.testing.assert_allclose(update, (1.0 + 0.5) * np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(state.log_var, -0.1 * (1 - np.array([2 * 0.5 * 1.0, 2 * 2.0 * 0.5])), rtol=1e-6)
    many = jax.jit(lambda st: jax.lax.fori_loop(0, 2000, lambda i, st: tx.update(grads, st, losses=losses)[1], st))
    state = many(state)
    # the root of 1 = p L w: w = 1 / (p L), Kendall et al.'s sigma^2 = L (likelihood) or f L (MSE)
    np.testing.assert_allclose(state.weights, [1.0, 0.25], rtol=1e-4)
    with pytest.raises(ValueError, match="both powers and divisors"):
        jaxmtl.uncertainty(powers=powers, num_tasks=2)


def recording():
    """A method whose state keeps the ``prev_batch_losses`` it was given."""

    def init(params):
        return jnp.zeros(2)

    def update(task_grads, state, params=None, *, losses=None, prev_batch_losses=None, **extra):
        return jax.tree.map(lambda g: g.sum(0), task_grads), prev_batch_losses

    return optax.GradientTransformationExtraArgs(init, update)


def test_previous_batch_losses_are_the_previous_batch_at_the_current_parameters():
    model = MixedLeNet(heads=("classify", "classify"))
    tasks = classification_tasks(("CL", "CR"))
    rng = np.random.default_rng(0)
    batches = [{"image": rng.normal(size=(4, 28, 28, 1)).astype(np.float32),
                "labels": rng.integers(0, 10, (4, 2)).astype(np.int32)} for _ in range(2)]
    variables = model.init(jax.random.PRNGKey(0), batches[0]["image"])
    tx = optax.chain(recording(), optax.sgd(0.1))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, previous_batch=True)
    opt_state = tx.init(variables["params"])
    variables, opt_state, _ = step(variables, opt_state, batches[1], jax.random.PRNGKey(1), batches[0])
    params = variables["params"]
    expected = [float(t.loss(o, *t.labels(batches[1]))) for t, o in
                zip(tasks, model.apply({"params": params}, batches[1]["image"]))]
    _, opt_state, _ = step(variables, opt_state, batches[0], jax.random.PRNGKey(2), batches[1])
    np.testing.assert_allclose(opt_state[0], expected, rtol=1e-5)   # batch 1 after the step it trained


def record(task, lr, seed, val, test):
    return {"spec": {"stl_task": 0, "seed": seed, "lr": lr, "method": "stl"}, "tasks": [task],
            "directions": {"accuracy": True}, "metrics": {task: ["accuracy"]},
            "epochs": [{"epoch": 1, "val": {task: {"loss": 1.0, "accuracy": val}},
                        "test": {task: {"loss": 1.0, "accuracy": test}}}]}


def test_single_task_reference_is_the_mean_of_the_best_configuration():
    runs = [record("CL", 1e-3, 0, 0.80, 0.70), record("CL", 1e-3, 1, 0.60, 0.50), record("CL", 1e-3, 2, 0.70, 0.60),
            record("CL", 1e-2, 0, 0.75, 0.90), record("CL", 1e-2, 1, 0.75, 0.80)]
    # chosen on seeds 0 and 1: lr 1e-3 scores 0.70, lr 1e-2 0.75 -> lr 1e-2, averaged over its runs
    val, test = stl_baselines(runs, rule="config_mean", choose_seeds=[0, 1])
    assert val == {"CL": {"accuracy": pytest.approx(0.75)}} and test == {"CL": {"accuracy": pytest.approx(0.85)}}
    # chosen on seed 0 alone: lr 1e-3 (0.80), then the mean over all three of its seeds
    val, test = stl_baselines(runs, rule="config_mean", choose_seeds=[0])
    assert val["CL"]["accuracy"] == pytest.approx(0.70) and test["CL"]["accuracy"] == pytest.approx(0.60)
    assert stl_baselines(runs, rule="best_run")[0] == {"CL": {"accuracy": 0.80}}
    with pytest.raises(ValueError, match="unknown baseline rule"):
        stl_baselines(runs, rule="median")


def test_mean_rank_ranks_each_metric_then_averages():
    scores = {"a": [{"metric": [0.9, 0.10]}], "b": [{"metric": [0.8, 0.05]}], "c": [{"metric": [0.7, 0.20]}]}
    # accuracy (higher better): a 1, b 2, c 3; error (lower better): b 1, a 2, c 3
    assert mean_ranks(["a", "b", "c"], scores, [True, False]) == {"a": 1.5, "b": 1.5, "c": 3.0}


def test_official_multilenet_heads():
    model = MixedLeNet(heads=("classify", "reconstruct"), dropout=0.5)
    x = jnp.ones((2, 28, 28, 1))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    sizes = jax.tree.map(lambda p: p.shape, params["head_1"])
    assert sizes["Dense_1"]["kernel"] == (50, 256) and sizes["Dense_0"]["kernel"] == (256, 784)
    assert params["head_0"]["Dense_1"]["kernel"].shape == (50, 50)
    logits, image = model.apply({"params": params}, x)
    assert image.shape == (2, 28, 28) and float(image.min()) < 0   # linear output: a normalised image
    a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})[1]
    b = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(2)})[1]
    assert not np.allclose(a, b)   # dropout in training, ...
    np.testing.assert_array_equal(model.apply({"params": params}, x)[1], image)   # ... none in evaluation


@pytest.mark.slow   # compiles tiny SegNet / MPNN steps for every configuration: about a minute each on 2 cores
@pytest.mark.parametrize("name", ["cityscapes", "qm9"])
def test_paper_c_on_its_other_benchmarks_end_to_end_on_fake_files(name, tmp_path, monkeypatch):
    import json


    from experiments.paper_c import uniform_vs_specialized as study
    from tests.fake_datasets import cityscapes_layout, fake_tfds

    data = dict(n_train=4, n_val=4, n_test=4)
    argv = ["--preset", "tiny", "--dataset", name, "--tiny-model", "--out", str(tmp_path / "out")]
    if name == "cityscapes":
        root = cityscapes_layout(tmp_path / "c", hw=(32, 64), n_train=8, n_val=4, instance="ids")
        argv += ["--data-dir", str(root)]
        data["val_fraction"] = 0.5
    monkeypatch.setitem(study.PRESETS, "tiny", dict(study.PRESETS["tiny"], data=data))
    with fake_tfds(name):
        assert study.main(argv) == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    tasks = records[0]["tasks"]
    assert len(tasks) == (3 if name == "cityscapes" else 11)
    assert all(r["spec"]["dataset"] == name and r["spec"]["tiny"] for r in records)
    uw_like = [r for r in records if r["spec"]["method"] == "imtl"]
    assert uw_like and uw_like[0]["spec"]["method_kwargs"] == {"lr": 1e-3}
    assert records[0]["spec"]["lr_schedule"] == ("plateau" if name == "qm9" else "exp_decay")
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "## Single-task references" in text and "MR (↓)" in text


def test_methods_run_where_paper_c_runs_them():
    """IMTL, MGDA-UB and GradDrop at the representation with the official heads' rule; Nash-MTL's
    heads weighted; fixed weights taken from a representation run train at the parameters."""
    from experiments.paper_c.uniform_vs_specialized import fixed_specs, official_settings
    from experiments.runs import RunSpec
    tasks = classification_tasks(("CL", "CR"), "labels")
    assert official_settings("imtl", tasks, 0.01) == ({"lr": 0.01}, {"level": "representation",
                                                                      "heads": "loss_scales"})
    assert official_settings("mgda_loss_plus", tasks, 0.01)[1] == {"level": "representation", "heads": "plain"}
    kwargs, fields = official_settings("graddrop", tasks, 0.01)
    assert kwargs == {"batch_axes": [0], "input_sign": True, "renormalize": True} and fields["level"] == "representation"
    assert official_settings("nash_mtl", tasks, 0.01) == ({}, {"heads": "weighted"})
    assert official_settings("cagrad", tasks, 0.01) == ({}, {})
    spec = RunSpec("imtl", "adam", 0.01, 0, 2, 16, level="representation", heads="loss_scales")
    assert spec.config == "imtl@z[heads=loss_scales]" and "level" in spec.record_fields()
    assert "level" not in RunSpec("imtl", "adam", 0.01, 0, 2, 16).record_fields()   # old keys unchanged
    record = {"spec": spec.record_fields(), "epochs": [{"weights": [1.0, 3.0]}]}
    best = {("CL+CR", "imtl"): {"val_dm": 0.0, "runs": [record]}}
    fixed = fixed_specs(best, {"problems": ["CL+CR"], "fixed_from": 1, "seeds": [0, 1]})
    assert [(s.level, s.heads, s.method) for s in fixed] == [("parameters", None, "ew")] * 2
    with pytest.raises(ValueError, match="needs level='representation'"):
        RunSpec("imtl", "adam", 0.01, 0, 2, 16, heads="loss_scales")
