"""The benchmark runs end to end (smoke test; timings are never asserted)."""
from __future__ import annotations

import jax.numpy as jnp
import pytest

import benchmarks as bench
from benchmarks import common, torch_side


@pytest.mark.slow  # ~30 s on 2 CPU cores; run with -m slow
def test_bench_writes_every_section(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch_side, "run", lambda *a, **k: [])  # torch is optional: not in CI
    out = tmp_path / "bench.md"
    assert bench.main(["--tasks", "2", "--jacobian-tasks", "2", "--solver-tasks", "3", "--methods",
                       "upgrad", "sdmgrad", "--repeats", "1", "--no-lenet", "--memory-tasks", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| MLP | 2 | upgrad |" in text and "| MLP | 2 | sdmgrad |" in text
    assert "| 2 | shared-only, chunks of 8 | Jacobian |" in text
    assert "| 3 | upgrad |" in text
    assert "| SegNet | 2 |" in text   # the flax section's memory rows (SegNet: no timing rows)
    assert "Skipped: torch or torchjd is not installed." in text
    assert "Gramian path / Jacobian+mean" in capsys.readouterr().out


def test_transfer_guard_catches_host_transfers():
    host_constant = lambda x: x + jnp.asarray([1.0, 2.0]).sum()  # not jitted: moves data every call
    with pytest.raises(Exception, match="[Dd]isallowed"):
        common.median_time(host_constant, jnp.ones(2), repeats=1)


def test_peak_bytes_counts_outputs():
    assert common.peak_bytes(lambda x: jnp.tile(x, 1000), jnp.ones(250)) >= 4 * 250_000



@pytest.mark.slow  # ~25 s of CPU on 2 cores; run with -m slow
def test_device_check_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.md"
    assert bench.main(["--device-check", "--tasks", "2", "--methods", "upgrad", "sdmgrad", "--repeats", "1",
                       "--flax-batch", "4", "--solver-tasks", "2", "--no-lenet", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| upgrad | 0.0e+00 | yes |" in text and "| sdmgrad | 0.0e+00 | yes |" in text
    assert "| MLP | 2 | 4 | upgrad |" in text and "| 2 | upgrad |" in text


def test_device_check_reports_a_step_that_disagrees(monkeypatch):
    from benchmarks import device_check

    monkeypatch.setattr(device_check, "TOLERANCE", -1.0)   # every step now counts as disagreeing
    rows = device_check.check_methods(["mean", "auto_lambda"], 2, 4, log=lambda line: None)
    assert rows == [{"method": "mean", "rel": 0.0, "ok": False}]   # auto_lambda: not a step of this form
