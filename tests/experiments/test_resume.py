"""Mid-run checkpoints of a study's training run: a run killed with SIGKILL after an
epoch resumes from its checkpoint and ends with the record of an uninterrupted run;
``--devices 8`` (8 fake CPU devices) trains UPGrad to the one-device record (every method family:
tests/test_sharding.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from experiments.runs import Hook, RunSpec, train_run
from jaxmtl.data import make_multi_fashion
from tests.conftest import device_env

ROOT = Path(__file__).resolve().parents[2]
DATA = dict(n_train=64, n_val=32, n_test=32)
SPEC = RunSpec(method="famo", optimizer="adam", lr=1e-3, seed=3, epochs=3, batch_size=16,
               data=dict(DATA, seed=0))

# trains SPEC in a child process; prints each finished epoch, then hangs to be killed
CHILD = textwrap.dedent("""
    import sys, time
    from experiments.runs import Hook, RunSpec, train_run
    from jaxmtl.data import make_multi_fashion
    spec = RunSpec(**{spec})
    data = make_multi_fashion({data_dir!r}, seed=0, **{data})
    class Stall(Hook):
        def on_epoch(self, record, params):
            print("epoch", record["epoch"], flush=True)
            if record["epoch"] == 2:
                time.sleep(600)
    train_run(spec, data, checkpoint_dir={ckpt!r}, hooks=[Stall()])
""")


def comparable(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k != "step_time_s"}, sort_keys=True)


def test_a_killed_run_resumes_to_the_uninterrupted_record(fake_fashion, tmp_path):
    from dataclasses import asdict

    ckpt = tmp_path / "ckpt"
    script = CHILD.format(spec=asdict(SPEC), data_dir=str(fake_fashion), data=DATA, ckpt=str(ckpt))
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, JAX_PLATFORMS="cpu"))
    try:
        lines = []
        for line in child.stdout:
            lines.append(line.strip())
            if line.strip() == "epoch 2":
                break
        assert lines[-1] == "epoch 2", lines
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    data = make_multi_fashion(str(fake_fashion), seed=0, **DATA)
    class Seen(Hook):
        epochs = []

        def on_epoch(self, record, params):
            self.epochs.append(record["epoch"])

    seen = Seen()
    resumed = train_run(SPEC, data, checkpoint_dir=ckpt, hooks=[seen])
    assert seen.epochs == [3]  # epochs 1 and 2 came from the checkpoint
    fresh = train_run(SPEC, data)
    assert comparable(resumed) == comparable(fresh)
    assert [e["weights"] for e in resumed["epochs"]] == [e["weights"] for e in fresh["epochs"]]


DEVICES = textwrap.dedent("""
    import json, jax
    from experiments.runs import RunSpec, device_mesh, train_run
    from jaxmtl.data import make_multi_fashion
    assert jax.device_count() == 8
    data = make_multi_fashion({data_dir!r}, seed=0, **{data})
    spec = RunSpec(method="upgrad", optimizer="adam", lr=1e-3, seed=1, epochs=1, batch_size=16,
                   data=dict({data}, seed=0))
    print(json.dumps([train_run(spec, data, mesh=device_mesh(n))["epochs"] for n in (1, 8)]))
""")


@pytest.mark.slow   # 23 s on 2 cores; tests/test_sharding.py checks sharded steps against one device
def test_eight_devices_train_to_the_one_device_record(fake_fashion):
    env = device_env(8)
    out = subprocess.run([sys.executable, "-c", DEVICES.format(data_dir=str(fake_fashion), data=DATA)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    one, eight = json.loads(out.stdout.splitlines()[-1])
    np.testing.assert_allclose(one[0]["train_loss"], eight[0]["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(one[0]["val"]["loss"], eight[0]["val"]["loss"], rtol=1e-4)
