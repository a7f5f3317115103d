"""Paper C's Cityscapes ladder (experiments.paper_c.ladder)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments.paper_c import ladder


def test_rungs_are_the_official_progression():
    assert list(ladder.RUNGS) == ["R50", "R18", "+I", "HR", "19C"]
    cfg = ladder.rung_config(ladder.PRESETS["paper"], "HR", None, False)
    assert cfg["data"]["size"] == (256, 512) and cfg["data"]["classes"] == 7
    assert cfg["data"]["tasks"] == ["segmentation", "depth", "instance"] and cfg["problems"] == ["S+D+I"]
    assert cfg["fields"] == {"dataset": "cityscapes", "arch": "deeplab_resnet18", "tiny": False}
    assert cfg["batch_size"] == 32 and cfg["epochs"] == 150 and cfg["lrs"] == [5e-3, 1e-3, 5e-4, 1e-4]


def test_summary_table_gives_mean_spread_and_margin():
    scores = {"R50": {"mean": [{"dm_c": -2.0}, {"dm_c": -4.0}], "imtl": [{"dm_c": 1.0}, {"dm_c": 3.0}]},
              "19C": {"mean": [{"dm_c": -5.0}], "imtl": []}}
    text, png = ladder.summary(scores)
    assert f"-3.00 ± {np.std([-2, -4], ddof=1):.2f}" in text and "+5.00" in text
    row = next(line for line in text.splitlines() if line.startswith("| 19C"))
    assert row.endswith("| -5.00 | - | - |")
    assert png[:4] == b"\x89PNG"


@pytest.mark.slow   # compiles tiny DeepLab steps for two rungs: minutes on 2 cores
def test_two_rungs_end_to_end_on_fake_files(tmp_path):
    from tests.fake_datasets import cityscapes_layout
    root = cityscapes_layout(tmp_path / "c", hw=(32, 64), n_train=8, n_val=4, instance="ids")
    out = tmp_path / "out"
    argv = ["--preset", "tiny", "--data-dir", str(root), "--tiny-model", "--out", str(out), "--rungs", "R18", "+I"]
    assert ladder.main(argv) == 0
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert {tuple(r["tasks"]) for r in records} == {("segmentation", "depth"), ("segmentation", "depth", "instance")}
    imtl = [r for r in records if r["spec"]["method"] == "imtl"]
    assert imtl and all(r["spec"]["level"] == "representation" for r in imtl)
    text = (out / "summary.md").read_text()
    assert "| R18 |" in text and "| +I |" in text
