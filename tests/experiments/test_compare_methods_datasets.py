"""experiments.compare_methods on every benchmark, end to end on fake files of its layout (tiny
models, 4 examples per split (32 to evaluate a classification), 1 epoch, batch 2), the studies that refuse other data sets, and the
Multi-Fashion record format."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from experiments import cli, compare_methods, runs, selection
from experiments.datasets import DATASETS, load_dataset
from experiments.paper_a import loss_scale, optimizer_study
from experiments.paper_c import uniform_vs_specialized
from experiments.runs import RunSpec
from jaxmtl.data import ATTRIBUTES, TARGETS, attribute_tasks, regression_tasks
from jaxmtl.data.multi_mnist import VAL_SIZE
from jaxmtl.training import delta_m
from tests.conftest import write_fake_fashion_mnist
from jaxmtl.models import MPNN, ResNetHeads
from tests.fake_datasets import cityscapes_layout, fake_tfds, nyuv2_layout

SMALL = dict(n_train=4, n_val=4, n_test=4)


def data_args(name: str, tmp_path) -> tuple[list[str], dict]:
    """``--data-dir`` arguments and extra loader settings of ``name``'s fake files."""
    if name == "multi_fashion":
        return ["--data-dir", str(write_fake_fashion_mnist(tmp_path / "f", n_train=40, n_test=20))], {}
    if name == "multi_mnist":  # the MNIST IDX files have Fashion-MNIST's names and format
        d = write_fake_fashion_mnist(tmp_path / "m", n_train=VAL_SIZE + 8, n_test=32, gz=False)
        return ["--data-dir", str(d)], {}
    if name == "cityscapes":
        return ["--data-dir", str(cityscapes_layout(tmp_path / "c", hw=(32, 64), n_train=8, n_val=4))], \
            {"val_fraction": 0.5}
    if name == "nyuv2":
        return ["--data-dir", str(nyuv2_layout(tmp_path / "n", hw=(32, 64), n_train=8, n_val=4))], \
            {"val_fraction": 0.5}
    return [], {}


def two_tasks(name: str, monkeypatch) -> None:
    """CelebA's 40 and QM9's 11 tasks cut to their first two (3 runs instead of 41 or 12, each
    compiling its step), the loader, batches and model family unchanged."""
    bench = DATASETS[name]
    if name == "celeba":
        tasks, model = (lambda data, names=None: attribute_tasks(ATTRIBUTES[:2])), \
            (lambda data, arch, tiny, dropout, tasks: ResNetHeads(2, stages=(1, 1, 1, 1), width=2))
    else:
        tasks, model = (lambda data, names=None: regression_tasks(TARGETS[:2], data.std[:2])), \
            (lambda data, arch, tiny, dropout, tasks: MPNN(2, features=4, edge_hidden=4, steps=1, readout_steps=1))
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(bench, tasks=tasks, model=model))


def run_compare(name, tmp_path, monkeypatch, methods=("ew",), study=compare_methods, argv=()):
    """``study.main`` (default: compare_methods, EW only) on ``name``'s fake files, tiny preset."""
    args, settings = data_args(name, tmp_path)
    if name in ("celeba", "qm9"):
        two_tasks(name, monkeypatch)
    sizes = dict(SMALL, n_val=32, n_test=32) if name in ("multi_fashion", "multi_mnist", "celeba") else SMALL
    monkeypatch.setitem(study.PRESETS, "tiny", dict(   # (32: no zero accuracy, the delta-m base)
        study.PRESETS["tiny"], data=dict(sizes, **settings), epochs=1, batch_size=2, seeds=[0],
        methods=list(methods), optimizers=["adam"]))
    out = tmp_path / "out"
    argv = ["--preset", "tiny", "--dataset", name, "--tiny-model", "--batch-size", "2", "--out", str(out), *args,
            *argv]
    with fake_tfds(name):
        assert study.main(argv) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return records, (out / "summary.md").read_text()


FAST = ["multi_mnist"]   # ~17 s on 2 CPU cores: the generic record format
SLOW_FASHION = ["multi_fashion"]   # its end-to-end run is tests/experiments/test_compare_methods.py's
SLOW = ["cityscapes", "qm9", "nyuv2", "celeba"]   # 23-130 s each on 2 cores: every run compiles its step


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW_FASHION + SLOW])
def test_compare_methods_on_fake_files(name, tmp_path, monkeypatch):
    records, summary = run_compare(name, tmp_path, monkeypatch)
    tasks = records[0]["tasks"]
    assert len(records) == len(tasks) + 1          # one STL run per task + EW
    assert "| ew | adam |" in summary and "Δm metric" in summary
    for r in records:
        assert len(r["epochs"]) == 1 and r["diverged"] is None
        assert r["spec"].get("dataset", "multi_fashion") == name and r["key"].startswith(r["label"])
    if name == "multi_fashion":
        assert "directions" not in records[0]
        return
    assert records[0]["spec"]["tiny"] is True
    higher = records[0]["directions"]
    epoch = records[-1]["epochs"][0]
    for t in tasks:   # each task's metrics and loss, by name, with a direction
        assert set(epoch["val"][t]) == {"loss", *records[0]["metrics"][t]}
        assert all(m in higher for m in records[0]["metrics"][t])
    # both delta-m conventions from the record alone
    base_val, base_test = selection.stl_baselines(records)
    best = selection.select_epoch(records[-1], base_val[0])
    test = selection.as_metrics(best["test"], tasks)
    assert set(test) == set(tasks)
    for convention in ("metric", "task"):
        assert isinstance(delta_m(test, base_test[0], higher, convention), float)


MULTI_FASHION_RECORD = {"key", "label", "spec", "tasks", "epochs", "diverged", "backend", "step_time_s"}
MULTI_FASHION_SPEC = {"method", "optimizer", "lr", "seed", "epochs", "batch_size", "data", "stl_task",
                      "weight_decay", "lr_schedule"}


def test_multi_fashion_record_format_unchanged(fake_fashion):
    data = load_dataset("multi_fashion", fake_fashion, n_train=8, n_val=4, n_test=4)
    spec = RunSpec("ew", "adam", 1e-3, 0, 1, 4)
    record = runs.train_run(spec, data)
    assert set(record) == MULTI_FASHION_RECORD
    assert set(record["spec"]) == MULTI_FASHION_SPEC
    assert set(record["epochs"][0]) == {"epoch", "train_loss", "val", "test", "weights"}
    assert set(record["epochs"][0]["val"]) == {"loss", "accuracy"}
    assert len(record["epochs"][0]["val"]["accuracy"]) == 2
    # keys of Multi-Fashion runs are those from before the data-set fields
    assert spec.key == "ew/adam/lr0.001/s0-" + hashlib.sha1(json.dumps(
        {k: v for k, v in record["spec"].items() if k not in ("weight_decay", "lr_schedule")},
        sort_keys=True).encode()).hexdigest()[:10]
    assert RunSpec("ew", "adam", 1e-3, 0, 1, 4, dataset="qm9").key != spec.key


@pytest.mark.slow   # 17-21 s each on 2 cores (3 runs); Multi-Fashion A1 is in tests/experiments/test_studies.py
@pytest.mark.parametrize("name", ["multi_mnist", "qm9"])
def test_optimizer_study_on_another_dataset(name, tmp_path, monkeypatch):
    records, summary = run_compare(name, tmp_path, monkeypatch, study=optimizer_study,
                                   argv=["--per-task", "--lrs", "1e-3"])
    assert len(records) == 3 and all(r["spec"]["dataset"] == name for r in records)
    assert "| EW |" in summary and "Pareto" in summary
    if name == "qm9":   # MAE: lower is better, in Δm and on the Pareto front
        assert records[0]["directions"] == {"mae": False} and "test mae mu" in summary


@pytest.mark.parametrize("study", [loss_scale, uniform_vs_specialized])
def test_studies_refuse_other_datasets_saying_why(study, capsys):
    with pytest.raises(SystemExit):
        study.main(["--dataset", "nyuv2"])
    err = capsys.readouterr().err
    allowed = "multi_mnist, cityscapes, qm9" if study is uniform_vs_specialized else "multi_fashion"
    assert "--dataset nyuv2" in err and (f"{allowed} only" in err or "takes no --dataset" in err)


def test_unknown_arch_is_refused(fake_fashion):
    args = cli.study_parser("doc", "compare_methods", {"quick": {}}, {"quick": "a test preset"}).parse_args(
        ["--dataset", "multi_fashion", "--arch", "segnet", "--data-dir", str(fake_fashion)])
    with pytest.raises(ValueError, match="multilenet"):
        cli.study_data(args, SMALL)


def test_multi_mnist_without_files_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST IDX files"):
        load_dataset("multi_mnist", tmp_path)


def test_batch_larger_than_the_training_split_is_refused(fake_fashion):
    data = load_dataset("multi_fashion", fake_fashion, n_train=4, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        runs.train_run(RunSpec("ew", "adam", 1e-3, 0, 1, 8), data)


def test_cityscapes_tasks_reach_the_data_and_the_run_key(tmp_path, fake_fashion):
    root = cityscapes_layout(tmp_path / "cs", hw=(128, 256), n_train=2, n_val=1, instance="ids")
    parse = cli.study_parser("doc", "compare_methods", {"quick": {}}, {"quick": "a test preset"}).parse_args
    args = parse(["--dataset", "cityscapes", "--data-dir", str(root), "--tasks", "segmentation", "depth", "instance"])
    settings = {}
    data, _ = cli.study_data(args, settings)
    assert tuple(data.tasks) == ("segmentation", "depth", "instance")
    assert settings["tasks"] == ["segmentation", "depth", "instance"]   # so RunSpec(data=settings) keys differ
    other = parse(["--dataset", "multi_fashion", "--data-dir", str(fake_fashion), "--tasks", "depth"])
    with pytest.raises(ValueError, match="multi_fashion has a fixed task set"):
        cli.study_data(other, {})
