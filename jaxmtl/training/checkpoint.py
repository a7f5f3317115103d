"""Mid-run checkpoints with Orbax: a killed run resumes where it stopped.

A checkpoint holds a training run's array state (parameters, the optimiser
chain's state with the method's state inside it: PRNG keys, EMAs, learned
weights) as an Orbax ``StandardSave`` pytree, and its host state (epoch, step,
the NumPy generator that orders the batches, the records logged so far) as
JSON beside it. Orbax writes each checkpoint to a temporary directory and
renames it when complete, so a kill during a save leaves the previous
checkpoint intact; only the last ``max_to_keep`` are kept. A save that fails
for want of space raises one ``OSError`` (``ENOSPC``) naming the checkpoint's
folder, whatever Orbax's threads wrapped it in. ::

    ckpt = RunCheckpoint(out / "checkpoints" / run_key)
    restored = ckpt.restore({"params": params, "opt_state": opt_state})
    if restored is not None:
        arrays, host = restored
    ...
    ckpt.save(epoch, {"params": params, "opt_state": opt_state}, {"epoch": epoch, ...})
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxmtl.training.results import disk_full


class RunCheckpoint:
    """Orbax checkpoints of one run in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, arrays: Any, host: dict[str, Any]) -> None:
        """Saves ``arrays`` (a pytree of arrays) and ``host`` (JSON-serialisable) as ``step``,
        and waits until the checkpoint is complete on disk."""
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.CRITICAL)   # a failed save logs each of its threads' errors: raised here once
        try:
            self._manager.save(step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(arrays),
                                                             host=ocp.args.JsonSave(host)))
            self._manager.wait_until_finished()
        except Exception as err:
            with contextlib.suppress(Exception):
                self._manager.close()   # its threads end now, not at the interpreter's exit
            full = disk_full(err)
            if full is None:
                raise
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.directory)) from full
        finally:
            absl.setLevel(level)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def restore(self, template: Any) -> tuple[Any, dict[str, Any]] | None:
        """``(arrays, host)`` of the latest checkpoint, the arrays with the structure,
        dtypes and shardings of ``template``; ``None`` when there is none."""
        step = self._manager.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        out = self._manager.restore(step, args=ocp.args.Composite(
            arrays=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()))
        return out.arrays, dict(out.host)

    def close(self) -> None:
        self._manager.close()


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy generator's state as JSON-serialisable data."""
    return rng.bit_generator.state


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    """The generator :func:`generator_state` saved, continuing its stream."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
