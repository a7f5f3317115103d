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
    capsys.readouterr()
    assert compare_methods.main(args) == 0
    assert calls == []
    rerun = capsys.readouterr()   # one line, no empty progress bar
    assert "4 runs, 4 already done" in rerun.out and "step/s" not in rerun.err and "it/s" not in rerun.err
    assert (out / "results.jsonl").read_text().splitlines()[:4] == lines

    # a new method only trains that method
    monkeypatch.setattr(runs, "train_run", train_run)
    assert compare_methods.main(args + ["--methods", "EW", "MGDA", "PCGrad"]) == 0   # LibMTL's names
    keys = [json.loads(line)["key"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(keys) == 5 and keys[:4] == [r["key"] for r in records]
    assert json.loads((out / "results.jsonl").read_text().splitlines()[4])["spec"]["method"] == "pcgrad"


@pytest.mark.filterwarnings("ignore:No artists with labels")   # Axes.bar is replaced below: no bars to label
def test_plot_error_bars_are_the_tables_spread(monkeypatch):
    """The bars' error bars are the sample standard deviation printed after ± in the table,
    and the plot says so."""
    import matplotlib.axes

    from experiments.report import ERROR_BARS, mean_std
    bars, titles = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda self, x, h, *a, **k: bars.append((list(h), k["yerr"])))
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, **k: titles.append(t))
    dms = [1.0, 4.0, 2.5]
    groups = [{"method": "ew", "optimizer": "adam", "dm_metric": dms, "curves": [[0.5, 0.6]] * 3,
               "curve_metric": "accuracy"}]
    compare_methods.plot(groups)
    (heights, yerr), = bars
    assert heights == [2.5] and yerr == [1.5]              # std of 1, 4, 2.5 with ddof=1
    assert mean_std(dms) == "2.50 ± 1.50"
    assert any(ERROR_BARS in t for t in titles)
