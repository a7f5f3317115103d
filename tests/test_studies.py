"""The four Paper A studies end to end on fake Fashion-MNIST files: outputs, resume, hand-offs.

Study A1 runs once per worker (``xdist_group``) and feeds A3 and A4 through ``--from-study``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import common, conflicts, corruptions, loss_scale, optimizer_study
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
            methods=["ew"], per_task=["mtl_io"], optimizers=["adam", "sgd_momentum"], lrs=[1e-2]))
        assert optimizer_study.main(["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out)]) == 0
    return out


def _fail(*args, **kwargs):
    raise AssertionError("a finished run was trained again")


def test_optimizer_study(a1, fashion, monkeypatch):
    records = [json.loads(line) for line in (a1 / "results.jsonl").read_text().splitlines()]
    assert len(records) == 8  # 2 optimizers x (2 STL + EW + MTL-IO)
    assert {r["spec"]["optimizer"] for r in records} == {"adam", "sgd_momentum", "mtl_io", "mtl_io_sgd_momentum"}
    assert all(r["spec"]["weight_decay"] == optimizer_study.WEIGHT_DECAY for r in records)
    summary = (a1 / "summary.md").read_text()
    for text in ("| EW | ", "| MTL-IO | ", "Pareto-optimal overall", "| Adam | 2 |", "vs SGD+mom."):
        assert text in summary, text
    assert (a1 / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(common, "train_run", _fail)
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(a1)]
    monkeypatch.setitem(optimizer_study.PRESETS, "tiny", dict(
        data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=32, seeds=[0],
        methods=["ew"], per_task=["mtl_io"], optimizers=["adam", "sgd_momentum"], lrs=[1e-2]))
    assert optimizer_study.main(args) == 0


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
    chosen = optimizer_study.select_runs(records)[("EW", "adam")]
    assert chosen["lr"] == 0.1 and len(chosen["runs"]) == 2 and chosen["diverged_lrs"] == 2
    assert chosen["val_dm"] == pytest.approx(100 * (0.9 - 0.8) / 0.9)


def test_train_run_records_divergence(fashion):
    from jaxmtl.data import make_multi_fashion

    data = make_multi_fashion(fashion, n_train=64, n_val=32, n_test=32)
    spec = common.RunSpec(method="ew", optimizer="sgd_momentum", lr=1e30, seed=0, epochs=3, batch_size=32)
    record = common.train_run(spec, data)
    assert record["diverged"] == 1 and record["epochs"] == []
    assert common.select_epoch(record, None) is None


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


def test_conflicts_from_study(a1, fashion, tmp_path, monkeypatch, capsys):
    out = tmp_path / "a3"
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out), "--from-study", str(a1)]
    assert conflicts.main(args) == 0
    record = json.loads((out / "results.jsonl").read_text())
    optimizer, lr = optimizer_study.best_ew(a1)
    assert record["spec"]["optimizer"] == optimizer and record["spec"]["lr"] == lr
    epochs = record["conflicts"]["epochs"]
    # 4 steps per epoch, statistics every 2: two draws of 8 samples per epoch
    assert len(epochs) == 2 and epochs[0]["inter_task"]["cosine"]["n"] == 2 * 8  # 1 task pair per sample
    assert epochs[0]["inter_sample"]["cosine"]["n"] == 2 * 2 * 28  # 2 tasks x C(8, 2) pairs
    assert epochs[0]["inter_sample_batch"]["cosine"]["n"] == 2 * 28
    assert "lies within" in capsys.readouterr().out or "is not within" in (out / "summary.md").read_text()
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(conflicts, "train_run", _fail)
    assert conflicts.main(args) == 0


def test_corruptions_from_study(a1, fashion, tmp_path, monkeypatch):
    out = tmp_path / "a4"
    args = ["--preset", "tiny", "--data-dir", str(fashion), "--out", str(out), "--from-study", str(a1)]
    assert corruptions.main(args) == 0
    records = {r["key"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    tuned = [r for r in records.values() if "model" in r]
    assert sorted(r["model"] for r in tuned) == ["mtl", "stl0", "stl1"]
    for r in tuned:
        assert len(r["corrupted"]) == 14 and all(len(v) == 5 for v in r["corrupted"].values())
    assert len(list((out / "models").glob("*.msgpack"))) == 3
    summary = (out / "summary.md").read_text()
    assert "δ_t" in summary and "| jpeg_compression |" in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setattr(corruptions, "train_run", _fail)
    monkeypatch.setattr(corruptions, "fine_tune_and_test", _fail)
    assert corruptions.main(args) == 0
