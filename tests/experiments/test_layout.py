"""The experiments' architecture: one training stack, a package per paper, data sets as data."""
from __future__ import annotations

import ast
import importlib
import json
import tomllib
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import runs
from experiments.datasets import DATASETS, DEFAULT, load_dataset

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
STUDIES = ["compare_methods", "paper_a.optimizer_study", "paper_a.loss_scale", "paper_a.conflicts",
           "paper_a.corruptions", "paper_a.toy", "paper_b.trajectories", "paper_c.uniform_vs_specialized",
           "paper_c.ladder"]


def string_constants(path: Path) -> set[str]:
    """Every string literal in a module's code (docstrings and f-string text included)."""
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_dataset_name_literal_outside_the_registry():
    found = {}
    for path in sorted(EXPERIMENTS.rglob("*.py")):
        if path.name == "datasets.py":
            continue
        names = set(DATASETS) & string_constants(path)
        if names:
            found[str(path.relative_to(ROOT))] = sorted(names)
    assert found == {}, f"data-set names outside experiments/datasets.py: {found}"


def test_one_training_stack_and_a_package_per_paper():
    assert not (EXPERIMENTS / "common.py").exists() and not (EXPERIMENTS / "paper_c_train.py").exists()
    for paper in ("paper_a", "paper_b", "paper_c"):
        assert (EXPERIMENTS / paper / "__init__.py").exists()
    defined = {}
    for path in EXPERIMENTS.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name in ("train_run", "stl_baselines", "select_epoch"):
                defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert defined == {"train_run": ["experiments/runs.py"], "stl_baselines": ["experiments/selection.py"],
                       "select_epoch": ["experiments/selection.py"]}
    for study in STUDIES:   # every entry point is a module with main()
        assert callable(importlib.import_module(f"experiments.{study}").main)


def test_the_wheel_holds_the_library_only():
    setuptools = pytest.importorskip("setuptools")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = setuptools.find_packages(str(ROOT), include=config["include"])
    assert "jaxmtl" in packages and "jaxmtl.aggregators" in packages
    assert not [p for p in packages if p.split(".")[0] in ("experiments", "tests", "benchmarks")]


def test_every_dataset_entry_is_complete():
    for name, bench in DATASETS.items():
        assert bench.title and bench.archs and bench.batch_size > 0, name
        assert bench.fake_batch is not None and set(bench.meta) == {"tasks", "num_classes"}, name
        for problem, tasks in bench.problems.items():
            assert set(tasks) <= set(bench.task_names or bench.meta["tasks"]), (name, problem)
    assert DEFAULT == next(iter(DATASETS)) and DATASETS[DEFAULT].legacy_record


def test_runs_differing_in_the_seed_share_their_compiled_steps(fake_fashion):
    data = load_dataset(DEFAULT, fake_fashion, n_train=8, n_val=4, n_test=4)
    runs._CACHE.clear()
    a = runs.train_run(runs.RunSpec("upgrad", "adam", 1e-3, 0, 1, 4), data)
    b = runs.train_run(runs.RunSpec("upgrad", "adam", 1e-3, 1, 1, 4), data)
    assert len(runs._CACHE) == 2   # a deterministic method: one train step for both seeds, one eval step
    runs.train_run(runs.RunSpec("rlw", "adam", 1e-3, 0, 1, 4), data)
    runs.train_run(runs.RunSpec("rlw", "adam", 1e-3, 1, 1, 4), data)
    assert len(runs._CACHE) == 4   # a random method draws from its seed: one per seed, the same eval step
    runs._CACHE.clear()
    fresh = runs.train_run(runs.RunSpec("upgrad", "adam", 1e-3, 1, 1, 4), data)
    assert a["epochs"] != b["epochs"]
    drop = lambda r: json.dumps({k: v for k, v in r.items() if k != "step_time_s"}, sort_keys=True)  # noqa: E731
    assert drop(fresh) == drop(b)   # the cached step gives the fresh step's record


class Grads(runs.Hook):
    """Records the in-step probe: the task gradients' squared norm on the shared parameters."""

    def __init__(self):
        self.values = []

    @staticmethod
    def step_probe(task_grads, params):
        return sum((g ** 2).sum() for g in jax.tree.leaves(task_grads["encoder"]))

    def on_probe(self, step, value, opt_state):
        self.values.append((step, float(value)))

    def record(self):
        return {"grad_sq": self.values}


def test_a_hook_sees_every_step_and_adds_to_the_record(fake_fashion):
    data = load_dataset(DEFAULT, fake_fashion, n_train=8, n_val=4, n_test=4)
    record = runs.train_run(runs.RunSpec("ew", "adam", 1e-3, 0, 2, 4), data, hooks=[Grads()])
    assert [s for s, _ in record["grad_sq"]] == [0, 1, 2, 3]
    assert np.all(np.isfinite([v for _, v in record["grad_sq"]])) and record["grad_sq"][0][1] > 0


@pytest.mark.parametrize("study", [*STUDIES, "paper_a.toy"])
def test_help_says_what_each_preset_runs_how_long_and_every_default(study, monkeypatch):
    import argparse

    module = importlib.import_module(f"experiments.{study}")
    parsers = []

    def parse_args(parser, argv=None, namespace=None):
        parsers.append(parser)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    with pytest.raises(SystemExit):
        module.main([])
    (parser,) = parsers
    assert [a.option_strings for a in parser._actions if not a.help] == []
    text = " ".join(parser.format_help().split())
    presets = text.split(" presets (")[1]
    for name in module.PRESETS:
        assert f" {name}: {' '.join(module.PRESET_NOTES[name].split())}" in presets
    assert all("CPU" in note or "GPU" in note for note in module.PRESET_NOTES.values())
    preset = next(a for a in parser._actions if "--preset" in a.option_strings)
    assert f"(default: {preset.default})" in text


def test_study_method_names_take_libmtl_and_torchjd_names():
    import argparse

    from experiments.cli import method_names
    parse = method_names(["ew", "uw_libmtl", "nash_mtl", "imtl_g"])
    assert [parse(n) for n in ("EW", "UW_LIBMTL", "Nash_MTL", "NashMTL", "IMTLG", "IMTL-G")] == \
        ["ew", "uw_libmtl", "nash_mtl", "nash_mtl", "imtl_g", "imtl_g"]
    with pytest.raises(argparse.ArgumentTypeError, match="'PCGrad' is 'pcgrad', which this study does not run; "
                                                         "choose from ew, uw_libmtl, nash_mtl, imtl_g"):
        parse("PCGrad")
    with pytest.raises(argparse.ArgumentTypeError, match="'foo' is not a method name; choose from ew, uw_libmtl"):
        parse("foo")
