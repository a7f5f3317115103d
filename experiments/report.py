"""What every study writes: Markdown tables, PNG figures, its result store and summary files."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxmtl.training import ResultStore, atomic_write


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


ERROR_BARS = "error bars: sample standard deviation over seeds (the table's ±; none for one seed)"
"""The caption of every plot whose error bars are :func:`spread`."""


def spread(values: list[float]) -> float:
    """The spread of ``values`` in the tables (after ``±``) and the plots' error bars: the
    sample standard deviation, 0 for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def mean_std(values: list[float], fmt: str = "{:.2f}") -> str:
    """``mean ± spread`` (:func:`spread`) of ``values``; the value alone for one, ``-`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} ± {fmt.format(spread(values))}"


def open_store(out: Path) -> ResultStore:
    """The study's ``results.jsonl`` in ``out``, warning about unreadable lines."""
    store = ResultStore(out / "results.jsonl")
    if store.skipped_lines:
        print(f"warning: skipped {store.skipped_lines} unreadable line(s) in {store.path}", file=sys.stderr)
    return store


def png_bytes(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def model_label(bench, arch: str | None, tiny: bool, *, class_name: bool = False) -> str:
    """A summary's name of a run's model: ``arch`` (``None``: the first of ``bench.archs``), with
    `` (tiny)`` for the few-channel version; ``class_name``: ``multilenet`` as ``MultiLeNet``."""
    name = arch or bench.archs[0]
    return ("MultiLeNet" if class_name and name == "multilenet" else name) + (" (tiny)" if tiny else "")


def write_summary(out: Path, title: str, preset: str, text: str, png: bytes | None, started: float) -> None:
    """Writes ``summary.md`` -- the heading ``# <title> (preset `<preset>`)``, then ``text`` --
    (and ``summary.png``) atomically and prints it."""
    text = f"# {title} (preset `{preset}`)\n\n{text}"
    atomic_write(out / "summary.md", text)
    if png is not None:
        atomic_write(out / "summary.png", png)
    print(text)
    print(f"wrote {out / 'results.jsonl'}, {out / 'summary.md'}"
          f"{', ' + str(out / 'summary.png') if png is not None else ''} ({time.time() - started:.0f} s)")
