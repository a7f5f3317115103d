"""Crash- and concurrency-safe results: an append-only JSONL store that a rerun resumes from,
exclusive run ownership through lock files, and atomic file writes."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and ``os.replace``:
    readers see the old or the new content, never a partial one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, mode) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise naming(err, path) from err


def naming(err: OSError, path: str | os.PathLike) -> OSError:
    """``err`` with ``path`` as its file name when it names none (``os.write`` errors name no file)."""
    if err.filename is not None:
        return err
    return type(err)(err.errno, err.strerror or os.strerror(err.errno or 0), os.fspath(path))


class ResultStore:
    """One JSON object per line, each with a unique ``"key"``; safe for several processes.

    :meth:`add` appends its record as one line under an exclusive ``fcntl`` lock
    on the file (``O_APPEND``, fsynced), so processes writing one store never lose
    each other's records; a later line of a key replaces an earlier one. Reading
    merges the lines: those that do not parse (a line cut by a kill) are skipped
    and counted in :attr:`skipped_lines`, and the next :meth:`add` drops a cut
    last line. :meth:`refresh` reads what other processes appended since. Stores
    written by earlier versions (one line per key, rewritten whole) read as before.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self.skipped_lines = 0
        self.refresh()

    def refresh(self) -> None:
        """Reads the lines appended since the last read (by this or another process)."""
        try:
            with open(self.path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)   # no line is half written meanwhile
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        if self._offset == 0 and len(complete) < len(data):   # a line cut by a kill (dropped by add)
            self.skipped_lines += 1
        self._offset += len(complete)
        for line in complete.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._records[record["key"]] = record
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
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
        """Appends ``record`` (it needs a ``"key"``); an ``OSError`` names the store's path."""
        if "key" not in record:
            raise ValueError("a result record needs a 'key'")
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _drop_cut_line(fd)
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)   # (releases the lock)
        except OSError as err:
            raise naming(err, self.path) from err
        self.refresh()
        self._records[record["key"]] = record


def _drop_cut_line(fd: int) -> None:
    """Truncates a last line without its newline: under the lock, only a killed writer leaves one."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - (1 << 20))
    while True:
        chunk = os.pread(fd, size - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0 or start == 0:
            os.ftruncate(fd, start + cut + 1)
            return
        start = max(0, start - (1 << 20))


class RunLock:
    """Exclusive ownership of one run among processes: an ``fcntl`` lock on the file ``path``
    (created with its parent folders; the owner's process id written in it).

    :meth:`acquire` takes it (waiting when ``wait``, else returning ``False`` when
    another process holds it); :meth:`release` gives it back and removes the file.
    The kernel releases the lock of a killed process, so a crashed owner never
    blocks a rerun. A file removed by its previous owner while this process
    waited is locked afresh, so two processes never own one run.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> bool:
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:   # a parent folder removed by an owner finishing: again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return True
            os.close(fd)

    def owner(self) -> int | None:
        """The process id written by the lock's holder (``None`` if unreadable)."""
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def remove_empty_parents(path: str | os.PathLike, stop: str | os.PathLike) -> None:
    """Removes ``path``'s parent folders up to ``stop`` (included) while they are empty."""
    path, stop = Path(path), Path(stop)
    for parent in path.parents:
        if stop not in (parent, *parent.parents):
            return
        try:
            parent.rmdir()
        except OSError:   # not empty (or gone): its parents are not empty either
            return


def disk_full(err: BaseException) -> OSError | None:
    """The ``ENOSPC`` ``OSError`` in ``err``'s chain of causes, if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return err
        err = err.__cause__ or err.__context__
    return None
