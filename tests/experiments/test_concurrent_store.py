"""Several processes on one result store: no record lost, each run trained by one process,
no empty checkpoint folder left; a full disk and Ctrl-C in a grid."""
from __future__ import annotations

import errno
import multiprocessing
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from experiments import runs
from experiments.runs import RunSpec, run_grid
from jaxmtl.training import ResultStore
from jaxmtl.training.results import RunLock

FORK = multiprocessing.get_context("fork")   # children inherit the patched train_run; they use no JAX
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")   # (JAX's warning: not for these)
DATA = SimpleNamespace(train=list(range(8)), val=[0], test=[0])
SPECS = [RunSpec(method=m, optimizer="adam", lr=1e-3, seed=0, epochs=1, batch_size=4) for m in ("ew", "upgrad", "mgda")]


def _append_records(path, writer, count, barrier):
    store = ResultStore(path)
    barrier.wait()
    for i in range(count):
        store.add({"key": f"{writer}-{i}", "payload": "x" * 2000})


def test_concurrent_writers_lose_no_record(tmp_path):
    path, writers, count = tmp_path / "results.jsonl", 4, 40
    barrier = FORK.Barrier(writers)
    procs = [FORK.Process(target=_append_records, args=(path, w, count, barrier)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * writers
    store = ResultStore(path)
    assert store.skipped_lines == 0
    assert sorted(r["key"] for r in store) == sorted(f"{w}-{i}" for w in range(writers) for i in range(count))


def test_store_reads_the_rewritten_format_and_refreshes(tmp_path):
    """A store of the earlier format (one line per key) reads as before; a later line of a key
    wins; :meth:`refresh` sees another writer's records."""
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a", "v": 1}\n{"key": "b", "v": 2}\n')
    mine, other = ResultStore(path), ResultStore(path)
    other.add({"key": "a", "v": 3})
    assert mine.get("a")["v"] == 1
    mine.refresh()
    assert mine.get("a")["v"] == 3 and len(mine) == 2 and ResultStore(path).get("a")["v"] == 3


def _fake_train_run(spec, data, *, progress=None, hooks=(), mesh=None, checkpoint_dir=None):
    """Stands in for training: a checkpoint file as Orbax would leave, a line in ``trained.log``."""
    Path(checkpoint_dir, "1").mkdir(parents=True)
    Path(checkpoint_dir, "1", "host.json").write_text("{}")
    time.sleep(0.4)
    with open(Path(checkpoint_dir).parents[len(Path(spec.key).parts)] / "trained.log", "a") as f:
        f.write(f"{spec.key} {os.getpid()}\n")
    return {"key": spec.key, "label": spec.label, "pid": os.getpid()}


def _grid(out, barrier, log):
    sys.stdout = sys.stderr = open(log, "w", buffering=1)
    barrier.wait()
    records = run_grid(SPECS, DATA, ResultStore(out / "results.jsonl"), devices=1)
    assert [r["key"] for r in records] == [s.key for s in SPECS]


def test_two_processes_on_one_grid_train_each_run_once(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "train_run", _fake_train_run)
    barrier = FORK.Barrier(2)
    logs = [tmp_path / f"log{k}" for k in range(2)]
    procs = [FORK.Process(target=_grid, args=(tmp_path, barrier, log)) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text() for log in logs]
    trained = [line.split()[0] for line in (tmp_path / "trained.log").read_text().splitlines()]
    assert sorted(trained) == sorted(s.key for s in SPECS)   # each run once
    assert len(ResultStore(tmp_path / "results.jsonl")) == 3
    said = "".join(log.read_text() for log in logs)
    assert "is training it; training the other runs first" in said
    assert not (tmp_path / "checkpoints").exists()   # no checkpoint, lock file or empty folder left


def test_a_run_owned_elsewhere_is_waited_for(tmp_path, monkeypatch, capsys):
    """The owner finishes the run while this process waits: its record is taken, not trained again."""
    spec = SPECS[0]
    lock = RunLock(tmp_path / "checkpoints" / f"{spec.key}.lock")
    owner = FORK.Process(target=_own_then_finish, args=(tmp_path, spec.key, lock.path))
    owner.start()
    while not lock.path.exists() or lock.owner() is None:
        time.sleep(0.01)
    monkeypatch.setattr(runs, "train_run", lambda *a, **k: pytest.fail("trained a run another process owns"))
    records = run_grid([spec], DATA, ResultStore(tmp_path / "results.jsonl"), devices=1)
    owner.join(10)
    assert records[0]["by"] == "owner"
    assert f"{spec.label}: waiting for process {owner.pid}, which is training it" in capsys.readouterr().out


def _own_then_finish(out, key, lock_path):
    lock = RunLock(lock_path)
    assert lock.acquire()
    time.sleep(0.5)
    ResultStore(out / "results.jsonl").add({"key": key, "by": "owner"})
    lock.release()


def test_run_lock_is_exclusive_and_released_by_a_killed_owner(tmp_path):
    path = tmp_path / "k.lock"
    holder = FORK.Process(target=_hold, args=(path,))
    holder.start()
    while RunLock(path).owner() != holder.pid:
        time.sleep(0.01)
    mine = RunLock(path)
    assert not mine.acquire()
    holder.kill()
    holder.join()
    assert mine.acquire(wait=True)
    mine.release()
    assert not path.exists()


def _hold(path):
    RunLock(path).acquire()
    time.sleep(60)


def test_ctrl_c_in_a_grid_says_how_many_runs_are_done(tmp_path, monkeypatch):
    calls = []

    def interrupted_second(spec, data, **kw):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"key": spec.key}

    monkeypatch.setattr(runs, "train_run", interrupted_second)
    store = tmp_path / "results.jsonl"
    with pytest.raises(KeyboardInterrupt, match=rf"^interrupted: 1 of 3 runs done in {store}; run the same "
                                                r"command again to resume \(a cut run from its last finished epoch\)$"):
        run_grid(SPECS, DATA, ResultStore(store), devices=1)
    assert not list((tmp_path / "checkpoints").rglob("*.lock"))   # the dropped run's lock is released


def test_a_full_disk_names_the_store(tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "results.jsonl")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as info:
        store.add({"key": "a"})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(store.path)
    monkeypatch.undo()
    assert "a" not in ResultStore(store.path)
