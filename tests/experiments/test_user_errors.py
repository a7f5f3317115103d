"""A user's mistake ends a study with one line and exit 2, never a traceback (issue 25); a full
disk exits 1 naming the file, Ctrl-C exits 130, a bug keeps its traceback."""
from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.cli import UsageError, run_main
from jaxmtl.data.checks import DataError
from tests.conftest import write_fake_fashion_mnist
from tests.fake_datasets import cityscapes_layout

ROOT = Path(__file__).resolve().parents[2]


def _raises(err):
    def main():
        raise err
    return main


@pytest.mark.parametrize("err, status, line", [
    (DataError("x.npy: expected class ids 0..6, found the value 9"), 2,
     "error: x.npy: expected class ids 0..6, found the value 9"),
    (UsageError("--arch nope: nyuv2 has the models segnet"), 2, "error: --arch nope: nyuv2 has the models segnet"),
    (FileNotFoundError("no <i>.npy files in /data"), 2, "error: no <i>.npy files in /data"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/results.jsonl"), 1,
     "error: no space left on the device writing /out/results.jsonl"),
    (KeyboardInterrupt("interrupted: 2 of 5 runs done in r.jsonl; run the same command again to resume"), 130,
     "interrupted: 2 of 5 runs done in r.jsonl; run the same command again to resume"),
])
def test_run_main_turns_user_errors_into_one_line(err, status, line, capsys):
    assert run_main(_raises(err)) == status
    assert capsys.readouterr().err == line + "\n"


def test_run_main_keeps_a_bugs_traceback_and_the_exit_status():
    with pytest.raises(ZeroDivisionError):
        run_main(lambda: 1 / 0)
    assert run_main(lambda: 3) == 3 and run_main(lambda: {"a": 1}) == 0


def _status(main, argv) -> int:
    """``main(argv)`` as ``python -m`` runs it: through :func:`run_main`, a parser error's exit code."""
    try:
        return run_main(lambda: main(argv))
    except SystemExit as stop:
        return stop.code


def test_study_mistakes_exit_2_with_one_line(tmp_path, capsys):
    """``main(argv)`` of each entry point, in this process: an empty store to summarise, no A1
    results to take configurations from, flags that contradict --from-study, a bad grid, too few
    images, more devices than there are, one task where tasks are compared, an unknown optimiser
    and numbers out of range (:func:`experiments.cli.at_least`) all exit 2 with one line, before
    any training (about a second in all)."""
    from experiments import compare_methods, datasets, multihost
    from experiments.paper_a import conflicts, corruptions, optimizer_study
    from experiments.paper_b import trajectories
    from experiments.paper_c import uniform_vs_specialized

    fake, empty = write_fake_fashion_mnist(tmp_path / "fashion", n_train=10_040, n_test=20), tmp_path / "empty"
    few = write_fake_fashion_mnist(tmp_path / "few", n_train=40, n_test=20)
    tiny = ["--preset", "tiny", "--data-dir", str(fake), "--out", str(empty)]
    store = empty / "results.jsonl"
    cases = [
        (optimizer_study.main, [*tiny, "--summary-only"], f"error: --summary-only: no runs in {store}\n"),
        (optimizer_study.main, [*tiny, "--lrs", "0.1", "0.1"],
         "error: --lrs 0.1 0.1: learning rates must be positive and distinct\n"),
        (conflicts.main, [*tiny, "--from-study", str(empty)],
         f"error: --from-study {empty}: no A1 results in {store}\n"),
        (corruptions.main, [*tiny, "--from-study", str(empty), "--lr", "0.1", "--weight-decay", "0"],
         "error: --lr/--weight-decay: --from-study sets the configuration (A1's best); give one or the other\n"),
        (uniform_vs_specialized.main, [*tiny, "--report-only"],
         f"error: --report-only: none of this command's runs are in {store}\n"),
        (uniform_vs_specialized.main, [*tiny, "--data-dir", str(few)],
         "error: 40 training images: the last 10000 are the validation set\n"),
        (compare_methods.main, [*tiny, "--devices", "999"],
         f"error: --devices 999: {len(jax.local_devices())} local device(s) ({jax.default_backend()}); on CPU, "
         "XLA_FLAGS=--xla_force_host_platform_device_count=N fakes N devices\n"),
        (conflicts.main, [*tiny, "--dataset", "cityscapes", "--tasks", "depth"],
         "--tasks depth: conflict is between tasks; give two tasks or more"),
        (conflicts.main, [*tiny, "--optimizer", "adamw"], "argument --optimizer: invalid choice: 'adamw'"),
        (compare_methods.main, [*tiny, "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (trajectories.main, [*tiny, "--seeds", "-1"], "argument --seeds: must be at least 0, got -1"),
        (uniform_vs_specialized.main, [*tiny, "--weight-decays", "-0.5"],
         "argument --weight-decays: must be at least 0.0, got -0.5"),
        (corruptions.main, [*tiny, "--weight-decay", "nan"], "argument --weight-decay: must be at least 0.0, got nan"),
        (corruptions.main, [*tiny, "--lr", "0"], "argument --lr: must be greater than 0.0, got 0"),
        (multihost.main, ["--steps", "0"], "argument --steps: must be at least 1, got 0"),
        (datasets.main, ["--batch-size", "two"], "argument --batch-size: invalid int value: 'two'"),
    ]
    for main, argv, message in cases:
        assert _status(main, argv) == 2, argv
        err = capsys.readouterr().err
        assert (err == message if message.startswith("error: ") else message in err), (argv, err)
    assert not store.exists()   # nothing trained, nothing written


DRIVER = textwrap.dedent("""
    import contextlib, io, json, runpy, sys, traceback
    for module, *argv in json.loads(sys.argv[1]):
        sys.argv, err = [module, *argv], io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                status = 0
            except SystemExit as stop:
                status = stop.code
            except BaseException:
                traceback.print_exc()
                status = "traceback"
        print(json.dumps([module, status, err.getvalue()]))
""")


def test_every_study_entry_point_reports_user_errors_without_traceback(tmp_path):
    """The entry points run as ``__main__`` (in one subprocess, importing JAX once), each with a
    mistake that fails before any compilation: a data file out of range, an unknown method,
    missing data, a bad flag, a model the data set lacks, a data set found in part."""
    city = cityscapes_layout(tmp_path / "city")
    np.save(city / "train" / "label_7" / "3.npy", np.full((16, 32), 9.0, np.float32))
    mnist = write_fake_fashion_mnist(tmp_path / "mnist", n_train=20, n_test=10)
    (mnist / "t10k-labels-idx1-ubyte.gz").unlink()
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["experiments.compare_methods", "--dataset", "cityscapes", "--data-dir", str(city), "--tiny-model", *out],
         f"error: {city}/train/label_7/3.npy: expected class ids 0..6 or -1 (ignored), found the value 9\n"),
        (["experiments.compare_methods", "--methods", "nosuch", *out], "'nosuch' is not a method name"),
        (["experiments.paper_a.optimizer_study", "--dataset", "nyuv2", "--data-dir", str(tmp_path / "none"), *out],
         f"error: no <i>.npy files in {tmp_path}/none/train/image nor in the data set's other folders.\n"),
        (["experiments.paper_a.corruptions", "--bogus", *out], "unrecognized arguments: --bogus"),
        (["experiments.paper_a.corruptions", "--dataset", "qm9", *out], "QM9's inputs are molecular graphs"),
        (["experiments.paper_a.loss_scale", "--preset", "nosuch", *out], "invalid choice: 'nosuch'"),
        (["experiments.paper_a.toy", "--bogus"], "unrecognized arguments: --bogus"),
        (["experiments.paper_b.trajectories", "--methods", "nosuch", *out], "'nosuch' is not a method name"),
        (["experiments.paper_c.uniform_vs_specialized", "--dataset", "cityscapes", "--arch", "nosuch",
          "--problems", "S+D", "--data-dir", str(city), *out], "error: --arch nosuch: cityscapes has the models segnet"),
        (["experiments.paper_c.uniform_vs_specialized", "--dataset", "multi_mnist", "--source", "mnist",
          "--data-dir", str(mnist), *out],
         f"error: {mnist} lacks t10k-labels-idx1-ubyte.gz (the data set's other files are there)\n"),
        (["experiments.paper_c.ladder", "--arch", "segnet", *out], "each rung sets its own model"),
    ]
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps([argv for argv, _ in cases])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('["experiments')]
    assert len(results) == len(cases), done.stderr[-3000:]
    for (argv, message), (module, status, err) in zip(cases, results):
        assert (module, status) == (argv[0], 2), err
        assert message in err and "Traceback" not in err, (argv, err)


@pytest.mark.slow
def test_ctrl_c_during_a_study_stops_cleanly(tmp_path):
    """SIGINT once the first run has checkpointed an epoch: the prefetch thread stops, the run is
    dropped, the study says how many runs are done and that a rerun resumes, exit 130."""
    data, out = write_fake_fashion_mnist(tmp_path / "fashion"), tmp_path / "out"
    study = subprocess.Popen([sys.executable, "-m", "experiments.compare_methods", "--preset", "tiny", "--methods",
                              "ew", "--epochs", "100", "--data-dir", str(data), "--out", str(out)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not any(p.name.isdigit() for p in (out / "checkpoints").rglob("*")) and study.poll() is None:
        assert time.monotonic() < deadline, "the study trained no epoch in 240 s"
        time.sleep(0.2)
    study.send_signal(signal.SIGINT)
    stdout, stderr = study.communicate(timeout=60)
    assert study.returncode == 130, stderr[-3000:]
    assert (f"interrupted: 0 of 3 runs done in {out / 'results.jsonl'}; run the same command again to resume"
            in stderr)
    assert "Traceback" not in stderr and "Segmentation" not in stderr
