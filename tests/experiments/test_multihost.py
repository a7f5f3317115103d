"""The multi-host example: two processes of two (fake CPU) devices each, joined by
``jax.distributed``, train to the same parameters as one process on four devices."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import device_env

ROOT = Path(__file__).resolve().parents[2]


def launch(devices: int, *args: str) -> subprocess.Popen:
    env = device_env(devices)
    return subprocess.Popen([sys.executable, "-m", "experiments.multihost", "--steps", "6", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.splitlines()[-1])


def test_two_processes_match_one_process_on_as_many_devices():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    common = ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [launch(2, *common, "--process-id", str(i)) for i in range(2)]
    try:
        two = [result(p) for p in procs]
    finally:
        for p in procs:
            p.kill()
    one = result(launch(4))
    assert [r["process"] for r in two] == [0, 1]
    assert two[0]["checksum"] == two[1]["checksum"] and two[0]["losses"] == two[1]["losses"]
    np.testing.assert_allclose(two[0]["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(two[0]["checksum"], one["checksum"], rtol=1e-5)


def test_several_processes_need_a_coordinator():
    from experiments import multihost

    with pytest.raises(SystemExit):
        multihost.parse(["--num-processes", "2"])


def test_the_rank_is_below_the_process_count(capsys):
    from experiments import multihost

    for rank in ("2", "-1"):
        with pytest.raises(SystemExit):
            multihost.parse(["--num-processes", "2", "--coordinator", "localhost:1234", "--process-id", rank])
        assert f"--process-id {rank}: a rank from 0 to 1 (--num-processes 2)" in capsys.readouterr().err
    args = multihost.parse(["--num-processes", "2", "--coordinator", "localhost:1234", "--process-id", "1"])
    assert args.process_id == 1
