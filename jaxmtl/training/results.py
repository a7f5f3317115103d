"""Crash-safe results: a JSONL store that a rerun resumes from, and atomic file writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and ``os.replace``:
    readers see the old or the new content, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())   # mkstemp makes 0600; colleagues read results
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


class ResultStore:
    """One JSON object per line, each with a unique ``"key"``.

    Loading skips lines that do not parse (e.g. a line cut by a kill from an
    older, non-atomic writer) and reports how many; every :meth:`add` rewrites
    the whole file atomically, so a killed run never corrupts finished results.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self._records[record["key"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        if "key" not in record:
            raise ValueError("a result record needs a 'key'")
        self._records[record["key"]] = record
        atomic_write(self.path, "".join(json.dumps(r, sort_keys=True) + "\n"
                                        for r in self._records.values()))
