"""The main job end to end on fake data: outputs, resume without redoing work, torn lines."""
from __future__ import annotations

import json

import pytest

from experiments import compare_methods, runs


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(compare_methods.PRESETS, "tiny", dict(
        data=dict(n_train=64, n_val=32, n_test=32), epochs=2, batch_size=32, seeds=[0],
        methods=["ew", "mgda"], optimizers=["adam"]))


def test_runs_writes_and_resumes(tiny, fake_fashion, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--preset", "tiny", "--data-dir", str(fake_fashion), "--out", str(out)]
    assert compare_methods.main(args) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 2 STL + 2 methods
    records = [json.loads(line) for line in lines]
    assert all(len(r["epochs"]) == 2 for r in records)
    assert all(len(r["epochs"][0]["weights"]) == 2 for r in records if r["spec"]["method"] == "mgda")
    summary = (out / "summary.md").read_text()
    assert "| mgda | adam |" in summary and "Δm metric" in summary
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "| ew | adam |" in capsys.readouterr().out

    # a kill mid-write of an older writer leaves a torn line; a rerun trains nothing again
    with open(out / "results.jsonl", "a") as f:
        f.write('{"key": "torn')
    calls, train_run = [], runs.train_run
    monkeypatch.setattr(runs, "train_run", lambda *a, **k: calls.append(a))
    assert compare_methods.main(args) == 0
    assert calls == []
    assert (out / "results.jsonl").read_text().splitlines()[:4] == lines

    # a new method only trains that method
    monkeypatch.setattr(runs, "train_run", train_run)
    assert compare_methods.main(args + ["--methods", "ew", "mgda", "pcgrad"]) == 0
    keys = [json.loads(line)["key"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(keys) == 5 and keys[:4] == [r["key"] for r in records]
