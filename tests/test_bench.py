"""The benchmark runs end to end (smoke test; timings are never asserted)."""
from __future__ import annotations

from jaxmtl import bench


def test_bench_writes_a_table(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert bench.main(["--tasks", "2", "--methods", "upgrad", "sdmgrad", "--repeats", "1",
                       "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 2 | upgrad |" in text and "| 2 | sdmgrad | - |" in text
    assert "step / mean-of-Jacobian step" in capsys.readouterr().out
