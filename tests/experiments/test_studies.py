"""The four Paper A studies end to end on fake Fashion-MNIST files: outputs, resume, hand-offs.

Study A1 runs once per worker (``xdist_group``) and feeds A3 and A4 through ``--from-study``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import jax.numpy as jnp
import optax

from experiments import runs, selection
from experiments.paper_a import conflicts, corruptions, loss_scale, optimizer_study, tuning
from experiments.optimizers import lr_factor, make_optimizer
from jaxmtl.protocol import find_method_state, recorded_weights
from tests.conftest import write_fake_fashion_mnist

pytestmark = pytest.mark.xdist_group("studies")


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fashion"), n_train=240, n_test=80)


@pytest.fixture(scope="module")
def a1(fashion, tmp_path_factory):
    out = tmp_path_factory.mktemp("a1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(optimizer_study.PRESETS, "tiny", dict(
            data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=32, seeds=[0],
            methods=["ew"], per_task=["mtl_io"], optimizers=["adam", "sgd_momentum"], lrs=[1e-2],
            lr_schedule="constant", extend=False))
        assert optimizer_study.main(["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out)]) == 0
    return out


def _fail(*args, **kwargs):
    raise AssertionError("a finished run was trained again")


def test_optimizer_study(a1, fashion, monkeypatch):
    records = [json.loads(line) for line in (a1 / "results.jsonl").read_text().splitlines()]
    assert len(records) == 8  # 2 optimizers x (2 STL + EW + MTL-IO)
    assert {r["spec"]["optimizer"] for r in records} == {"adam", "sgd_momentum", "mtl_io", "mtl_io_sgd_momentum"}
    assert all(r["spec"]["weight_decay"] == tuning.WEIGHT_DECAY == 1e-5 for r in records)
    summary = (a1 / "summary.md").read_text()
    for text in ("| EW | ", "| MTL-IO | ", "on the joint front (all optimizers)", "PO w.r.t. SGD+mom. (paper's count)",
                 "| Adam | 2 |", "Grid extended past an edge choice: not by this run",
                 "Choices still at an edge of the learning rates tried: EW / Adam at 0.01 (top)"):
        assert text in summary, text
    assert (a1 / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(runs, "train_run", _fail)
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(a1)]
    monkeypatch.setitem(optimizer_study.PRESETS, "tiny", dict(
        data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=32, seeds=[0],
        methods=["ew"], per_task=["mtl_io"], optimizers=["adam", "sgd_momentum"], lrs=[1e-2],
        lr_schedule="constant", extend=False))
    assert optimizer_study.main(args) == 0
    assert optimizer_study.main(args + ["--summary-only", "--lrs", "0.5"]) == 0  # the store's runs, none trained
    assert (a1 / "summary.md").read_text() == summary  # the grid is the store's, [0.01], not --lrs


def test_select_runs_skips_diverged_learning_rates():
    def run(lr, seed, val, diverged=None, stl=None):
        acc = {"accuracy": [val, val]}
        epochs = [] if diverged == 1 else [{"epoch": 1, "val": acc, "test": acc}]
        return {"spec": {"stl_task": stl, "method": "ew", "optimizer": "adam", "lr": lr, "seed": seed},
                "tasks": ["a", "b"], "epochs": epochs, "diverged": diverged, "label": f"{lr}/{seed}"}

    records = [run(1.0, 0, 0.9, stl=0), run(1.0, 0, 0.9, stl=1),
               run(0.1, 0, 0.8), run(0.1, 1, 0.8),      # both seeds fine
               run(0.5, 0, 0.95), run(0.5, 1, 0.0, 1),  # better, but one seed diverged at once
               run(0.01, 0, 0.7, 2), run(0.01, 1, 0.7)]  # diverged later: still a candidate
    chosen = tuning.select_runs(records)[("ew", "adam")]
    assert chosen["lr"] == 0.1 and len(chosen["runs"]) == 2 and chosen["diverged_lrs"] == 2
    assert chosen["lrs"] == [0.01, 0.1, 0.5] and tuning.grid_edge(chosen) == 0
    assert chosen["val_dm"] == pytest.approx(100 * (0.9 - 0.8) / 0.9)


def test_train_run_records_divergence(fashion):
    from jaxmtl.data import make_multi_fashion

    data = make_multi_fashion(fashion, n_train=64, n_val=32, n_test=32)
    spec = runs.RunSpec(method="ew", optimizer="sgd_momentum", lr=1e30, seed=0, epochs=3, batch_size=32)
    record = runs.train_run(spec, data)
    assert record["diverged"] == 1 and record["epochs"] == []
    assert selection.select_epoch(record, None) is None


def test_loss_scale_invariance(tmp_path, monkeypatch):
    monkeypatch.setattr(loss_scale, "CONFIGS", [("ew", "sgd"), ("ew", "per_task_adam"), ("uw_optimal", "sgd")])
    monkeypatch.setattr(loss_scale, "WEIGHTINGS", ["dwa"])
    out = tmp_path / "a2"
    assert loss_scale.main(["--preset", "tiny", "--out", str(out)]) == 0
    rec = {(r["table"], r["method"], r["optimizer"], r["frozen"]): r
           for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert len(rec) == 3 * 2 + 1 * 3  # configs x (free, frozen), weightings x 3 Adam settings
    for part in ("heads", "backbone"):
        for m, o in (("ew", "per_task_adam"), ("uw_optimal", "sgd")):  # invariant everywhere
            assert max(rec[("scale", m, o, False)][f"drift_{part}"]) < 1e-5
        assert min(rec[("scale", "ew", "sgd", False)][f"drift_{part}"]) > 1e-3  # SGD is not
    assert max(rec[("weighting", "dwa", "adam_b0", True)]["drift_heads"]) < 1e-5  # beta = 0: DWA is EW
    assert rec[("scale", "ew", "sgd", True)]["drift_backbone"] == [0.0] * 3  # frozen means frozen
    assert np.all(np.isfinite(rec[("scale", "ew", "sgd", False)]["losses_a"]))
    summary = (out / "summary.md").read_text()
    assert "| EW | SGD |" in summary and "| DWA |" in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(loss_scale, "train_pair", _fail)
    assert loss_scale.main(["--preset", "tiny", "--out", str(out)]) == 0


def test_conflicts_from_study(a1, fashion, tmp_path, monkeypatch):
    out = tmp_path / "a3"
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out), "--from-study", str(a1)]
    assert conflicts.main(args) == 0
    record = json.loads((out / "results.jsonl").read_text())
    best = tuning.best_config(a1, "ew")
    assert {k: record["spec"][k] for k in best} == best and best["weight_decay"] == 1e-5
    epochs = record["conflicts"]["epochs"]
    # 4 steps per epoch, statistics every 2: two draws of 8 samples per epoch
    assert len(epochs) == 2 and epochs[0]["inter_task"]["cosine"]["n"] == 2 * 8  # 1 task pair per sample
    assert epochs[0]["inter_sample"]["cosine"]["n"] == 2 * 2 * 28  # 2 tasks x C(8, 2) pairs
    assert epochs[0]["inter_sample_batch"]["cosine"]["n"] == 2 * 28
    inside, lower, sentence = conflicts.verdict(record["conflicts"]["overall"])
    assert sentence in (out / "summary.md").read_text()
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(runs, "train_run", _fail)   # the finished run is not trained again
    assert conflicts.main(args) == 0


def test_corruptions_from_study(a1, fashion, tmp_path, monkeypatch):
    out = tmp_path / "a4"
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out), "--from-study", str(a1)]
    assert corruptions.main(args) == 0
    records = {r["key"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    tuned = [r for r in records.values() if "model" in r]
    assert sorted(r["model"] for r in tuned) == ["ew/s0", "stl0/s0", "stl1/s0"]
    clean = [r for r in records.values() if "spec" in r]
    assert len(clean) == 3 and all(r["spec"]["weight_decay"] == 1e-5 for r in clean)  # A1's, not 0
    for r in tuned:
        assert len(r["corrupted"]) == 14 and all(len(v) == 5 for v in r["corrupted"].values())
    assert len(list((out / "models").glob("*.msgpack"))) == 3 + 3   # clean and fine-tuned
    summary = (out / "summary.md").read_text()
    assert "δ_t" in summary and "| jpeg_compression |" in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(corruptions, "train_run", _fail)
    monkeypatch.setattr(corruptions, "fine_tune", _fail)
    monkeypatch.setattr(corruptions, "test_all", _fail)
    assert corruptions.main(args) == 0


def test_pareto_counts_paper_and_joint():
    run = lambda seed, acc: {"seed": seed, "test_acc": acc}
    chosen = {("ew", "adam"): {"runs": [run(0, [90, 80]), run(1, [85, 75])]},   # (85, 75) lost to Adam's own run
              ("ew", "sgd_momentum"): {"runs": [run(0, [80, 70]), run(1, [70, 90])]}}
    table, front = optimizer_study.pareto_tables(chosen, ["adam", "sgd_momentum"])
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in table.splitlines()[2:]}
    # joint front: (90, 80) and (70, 90); PO w.r.t. the other: Adam 2 of 2 (SGD dominates neither), SGD 1 of 2
    assert rows["Adam"] == ["2", "1", "-", "2 |"] and rows["SGD+mom."] == ["2", "1", "1", "- |"]
    assert front == ["EW / Adam / s0", "EW / SGD+mom. / s1"]


def test_grid_extends_past_edges_within_the_paper_range(monkeypatch):
    assert optimizer_study.step_past([0.05, 0.005, 0.0005], +1) == pytest.approx(0.5)
    assert optimizer_study.step_past([0.5, 0.05], +1) is None  # the paper's top
    assert optimizer_study.step_past([0.0005, 0.005], -1) == pytest.approx(5e-5)
    assert optimizer_study.step_past([5e-5, 5e-4], -1) == pytest.approx(1e-5)  # clipped to the paper's bottom

    def record(row, lr, acc):
        stl = int(row[3]) if row.startswith("stl") else None
        a = {"accuracy": [acc, acc]}
        return {"spec": {"stl_task": stl, "method": "stl" if stl is not None else row, "optimizer": "sgd_momentum",
                         "lr": lr, "seed": 0}, "tasks": ["a", "b"], "label": f"{row}/{lr}",
                "epochs": [{"epoch": 1, "val": a, "test": a}], "diverged": None}

    # accuracy peaks at lr 0.5 for EW, at 0.005 for the single-task runs
    acc = {"ew": {0.05: 0.7, 0.005: 0.6, 0.5: 0.8}, "stl": {0.05: 0.8, 0.005: 0.9, 0.0005: 0.85}}
    records = [record(r, lr, acc["ew" if r == "ew" else "stl"][lr]) for r in ("stl0", "stl1", "ew")
               for lr in (0.05, 0.005)]
    trained = []

    def fake_grid(specs, data, store, devices=None):
        trained.extend(specs)
        return [record("ew" if s.stl_task is None else f"stl{s.stl_task}", s.lr,
                       acc["ew" if s.stl_task is None else "stl"][s.lr]) for s in specs]

    monkeypatch.setattr(optimizer_study, "run_grid", fake_grid)
    cfg = dict(optimizer_study.PRESETS["tiny"], methods=["ew"], per_task=[], optimizers=["sgd_momentum"])
    records, added = optimizer_study.extend_grid(cfg, records, None, None, data_seed=0)
    assert added == {("ew", "sgd_momentum"): [0.5], ("stl0", "sgd_momentum"): [0.0005],
                     ("stl1", "sgd_momentum"): [0.0005]}
    assert sorted((s.method, s.lr) for s in trained) == [("ew", 0.5), ("stl", 0.0005), ("stl", 0.0005)]
    text = optimizer_study.edges_text(records, added, True)
    assert "EW / SGD+mom. at 0.5 (top)" in text and "STL" not in text.split("still at an edge")[1]


def test_conflict_verdict_both_ways():
    def stats(lo, hi, mag):
        return {"cosine": {"p2.5": lo, "p97.5": hi}, "magnitude": {"mean": mag}}

    inside, lower, text = conflicts.verdict({"inter_task": stats(-0.2, 0.3, 0.4), "inter_sample": stats(-0.5, 0.6, 0.7)})
    assert inside and lower and "lies within" in text and "unlike" not in text
    inside, lower, text = conflicts.verdict({"inter_task": stats(-0.7, 0.3, 0.8), "inter_sample": stats(-0.5, 0.6, 0.7)})
    assert not inside and not lower and text.count("unlike Paper A") == 2


def test_rlw_weights_depend_on_the_run_seed():
    jac = {"w": jnp.ones((2, 3))}

    def weights(seed):
        tx = runs.build_method("rlw", 2, seed=seed)
        _, state = tx.update(jac, tx.init({"w": jnp.zeros(3)}), losses=jnp.ones(2))
        return np.asarray(recorded_weights(state))

    np.testing.assert_array_equal(weights(0), weights(0))
    assert not np.allclose(weights(0), weights(1))


def test_libmtl_settings():
    with pytest.raises(ValueError, match="model's optimizer"):
        runs.build_method("uw_libmtl", 2)
    tx = runs.build_method("uw_libmtl", 2, optimizer=optax.sgd(0.1))  # LibMTL: s0 = -0.5, the model's SGD
    state = tx.init({"w": jnp.zeros(3)})
    losses = jnp.asarray([2.0, 0.5])
    _, state = tx.update({"w": jnp.ones((2, 3))}, state, losses=losses)
    s0 = -0.5
    np.testing.assert_allclose(recorded_weights(state), 0.5 * np.exp(-s0) * np.ones(2), rtol=1e-6)
    step = 0.1 * (0.5 - np.asarray(losses) * 0.5 * np.exp(-s0))  # one SGD step on dL/ds
    np.testing.assert_allclose(find_method_state(state).log_var, s0 - step, rtol=1e-6)
    assert runs.weights_heads("uw_libmtl") and not runs.weights_heads("cagrad_libmtl")
    g = jnp.asarray([[1.0, 0.0], [0.0, 2.0]])
    mean, summed = (runs.build_method(n, 2).update(g, runs.build_method(n, 2).init(None))[0]
                    for n in ("aligned_mtl", "aligned_mtl_libmtl"))
    np.testing.assert_allclose(summed, 2 * mean, rtol=1e-5)  # LibMTL sums the aligned rows
    assert runs.LIBMTL_SETTINGS["cagrad_libmtl"][1](2) == {"c": 0.5}


def test_lr_schedule_step_halving():
    assert lr_factor("constant", 4, 10) is None
    f = lr_factor("step", 300, 1)  # the paper: halved after epochs 100 and 200
    assert [float(f(e)) for e in (0, 99, 100, 199, 200, 299)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    f = lr_factor("step", 4, 10)  # quick's 4 epochs would halve after epochs 1 and 3
    assert [float(f(s)) for s in (9, 10, 29, 30)] == [1, 0.5, 0.5, 0.25]
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("cosine", 4, 10)
    tx = make_optimizer("sgd_momentum", 0.1, runs.build_method("ew", 1), num_tasks=1, factor=lr_factor("step", 3, 1))
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    steps = []
    for _ in range(3):
        u, state = tx.update({"w": jnp.ones((1, 1))}, state, params)
        steps.append(float(u["w"][0]))
    np.testing.assert_allclose(steps, [-0.1, -0.5 * 0.19, -0.25 * 0.271], rtol=1e-5)  # momentum kept, lr halved


def test_a4_paper_preset_runs_six_methods_and_three_seeds():
    args = type("Args", (), dict(from_study=None, optimizer="adam", lr=1e-3, weight_decay=tuning.WEIGHT_DECAY))()
    specs = corruptions.clean_specs(corruptions.PRESETS["paper"], args, 2)
    assert len(specs) == 3 * (2 + 6)
    assert {s.method for s in specs.values()} == {"stl", "ew", "uw_libmtl", "rlw", "imtl", "pcgrad", "cagrad_libmtl"}
    assert {s.seed for s in specs.values()} == {0, 1, 2} and {s.weight_decay for s in specs.values()} == {1e-5}
    quick = corruptions.PRESETS["quick"]
    assert set(quick["methods"]) < set(corruptions.PAPER_METHODS) and quick["seeds"] == [0]


def test_corruptions_takes_the_libmtl_settings_by_name(tmp_path, monkeypatch):
    """``--methods`` accepts Paper A's LibMTL settings (its ``paper`` preset's names): parsing
    passes and the run gets as far as loading the data."""
    class Parsed(Exception):
        pass

    def stop(*args, **kwargs):
        raise Parsed

    monkeypatch.setattr(corruptions, "study_data", stop)
    with pytest.raises(Parsed):
        corruptions.main(["--preset", "tiny", "--methods", "uw_libmtl", "cagrad_libmtl", "--out", str(tmp_path)])
