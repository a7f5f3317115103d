"""Study C (experiments.paper_c.uniform_vs_specialized): its pieces, and the tiny preset end to end."""
from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.datasets import get
from experiments.paper_c import uniform_vs_specialized as study
from experiments.paper_c.report import per_task_change
from experiments.paper_c.uniform_vs_specialized import interference
from jaxmtl.training import task_losses
from tests.conftest import write_fake_fashion_mnist


def test_fixed_weights_rule_is_paper_cs():
    # per-epoch weights normalised to sum 1, EMA 0.9 from the first epoch, last value renormalised
    record = {"epochs": [{"weights": [2.0, 0.0]}, {"weights": [0.0, 3.0]}, {"weights": [1.0, 1.0]}]}
    ema = 0.9 * (0.9 * np.array([1.0, 0.0]) + 0.1 * np.array([0.0, 1.0])) + 0.1 * np.array([0.5, 0.5])
    np.testing.assert_allclose(study.fixed_weights(record), ema / ema.sum())
    assert sum(study.fixed_weights(record)) == pytest.approx(1.0)


def test_method_configs_is_the_product_of_the_grid():
    assert study.method_configs({}) == [{}]
    assert study.method_configs({"c": [0.2, 0.5], "x": [1]}) == [{"c": 0.2, "x": 1}, {"c": 0.5, "x": 1}]


def test_interference_statistic():
    params = {"encoder": {"w": jnp.zeros(3)}, "head_0": {"w": jnp.zeros(2)}}
    grads = {"encoder": {"w": jnp.array([[1.0, 0, 0], [1.0, 0, 0]])}, "head_0": {"w": jnp.ones(2)}}
    assert float(interference(grads, params)) == pytest.approx(1.0)
    grads["encoder"]["w"] = jnp.array([[1.0, 0, 0], [0, 1.0, 0]])
    assert float(interference(grads, params)) == pytest.approx(np.sqrt(0.5), rel=1e-5)


def test_task_losses_and_per_task_change():
    batch = {"labels": jnp.array([[0, 1]]), "items": jnp.zeros((1, 2, 2, 2))}
    logits = jnp.array([[10.0, -10.0]])
    tasks = get("multi_mnist").tasks(None, ("CL", "RR"))   # the registry's Multi-MNIST tasks, by name
    losses = task_losses((logits, jnp.full((1, 2, 2), 0.5)), batch, tasks)
    np.testing.assert_allclose(losses, [0.0, 0.25], atol=1e-6)
    base = {"CL": {"accuracy": 0.5}, "RR": {"recon_error": 0.1}}
    record = {"tasks": ["CL", "RR"], "directions": {"accuracy": True, "recon_error": False}}
    split = {"CL": {"loss": 1.0, "accuracy": 0.6}, "RR": {"loss": 1.0, "recon_error": 0.05}}
    np.testing.assert_allclose(per_task_change(record, split, base), [20.0, 50.0])


def test_tiny_preset_end_to_end_and_resumes(tmp_path, capsys):
    fake = write_fake_fashion_mnist(tmp_path / "fashion", n_train=10_064, n_test=40)
    out = tmp_path / "out"
    args = ["--preset", "tiny", "--data-dir", str(fake), "--out", str(out)]
    assert study.main(args) == 0
    text = (out / "summary.md").read_text()
    for section in ("## Single-task references", "## CL+RR", "## Fixed weights from an SMTO's run",
                    "## Harder-problem axis", "## Interference", "Δm C", "Δm A", "MR (↓)",
                    "## Beside paper C's Table 3", "**Claim 1 (CL+RR", "**Claim 3 (CL+RR"):
        assert section in text
    for name in ("summary.png", "weights.png", "interference.png"):
        assert (out / name).stat().st_size > 0
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    # the grid on seed 0 (2 single-task baselines, 4 methods), the chosen configurations on seed 1,
    # fixed weights from the best SMTO on both seeds
    assert len(lines) == 2 + 4 + 2 + 4 + 2
    roto = [r for r in lines if r["spec"]["method"] == "rotograd"]
    assert roto and all(r["spec"]["level"] == "representation" and r["spec"]["method_kwargs"] == {"lr_relation": 1.0}
                        for r in roto)
    assert {r["spec"]["seed"] for r in lines} == {0, 1} and all(r["spec"]["weight_decay"] == 0 for r in lines)
    assert all(r["trace"] and r["diverged"] is None for r in lines)
    assert [r["trace"][1][0] for r in lines] == [2] * len(lines)   # every 2 steps (preset tiny)
    capsys.readouterr()
    assert study.main(args) == 0
    assert "grid: 6 runs, 6 already done" in capsys.readouterr().out
    assert len((out / "results.jsonl").read_text().splitlines()) == len(lines)
