"""Data-parallel training over a device mesh: the batch sharded, everything else replicated.

A jitted step whose inputs carry shardings runs on every device of the mesh
(``jax.jit`` with shardings, no ``pmap``): XLA partitions the forward pass and
the ``T`` backward passes over the batch axis and inserts the reductions, so
the per-task Jacobian, the Gramian and every method see the gradients of the
*full* batch (not a per-device Gramian), and the method's state (PRNG keys,
EMAs, learned weights), the parameters and the optimiser state stay replicated
and identical on every device. ::

    mesh = jaxmtl.sharding.data_mesh()                   # all local devices on axis "data"
    step = jaxmtl.sharding.data_parallel(step, mesh)     # step(params, opt_state, batch, ...)
    params, opt_state = jaxmtl.sharding.replicate((params, opt_state), mesh)
    for batch in batches:
        params, opt_state, losses = step(params, opt_state, jaxmtl.sharding.shard_batch(batch, mesh))

Multi-host (TPU pods, several GPU hosts): call ``jax.distributed.initialize()``
first in every process; :func:`data_mesh` then spans the global devices and
:func:`shard_batch` takes each process's *local* part of the batch (its
leading axis is the per-process batch) and assembles the global array with
``jax.make_array_from_process_local_data``.

When to shard the task axis instead: the ``T`` backward passes are independent,
so for large ``T`` and a model that fits on one device they could be split
over devices (``chunk_size`` already bounds their memory on one device); the
data-parallel split above is the one that scales the batch, and the one the
experiments use.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | int | None = None, *, axis: str = AXIS) -> Mesh:
    """A one-axis mesh over ``devices`` (default all devices; an int takes the first ``n``)."""
    every = jax.devices()
    if devices is None:
        devices = every
    elif isinstance(devices, int):
        if not 1 <= devices <= len(every):
            raise ValueError(f"asked for {devices} devices, {len(every)} available "
                             f"({jax.default_backend()}); on CPU, XLA_FLAGS="
                             "--xla_force_host_platform_device_count=N fakes N devices")
        devices = every[:devices]
    return Mesh(np.asarray(devices), (axis,))


def batch_sharding(mesh: Mesh, *, axis: str = AXIS) -> NamedSharding:
    """The leading (batch) axis split over ``axis``."""
    return NamedSharding(mesh, PartitionSpec(axis))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same value on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: Any, mesh: Mesh, *, axis: str = AXIS) -> Any:
    """Every leaf of ``batch`` with its leading axis split over the mesh.

    In a multi-process run the leaves are this process's part of the global
    batch. Raises ``ValueError`` when a leading axis does not divide evenly.
    """
    sharding = batch_sharding(mesh, axis=axis)
    local = len(mesh.local_devices)

    def put(x):
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] % local:
            raise ValueError(f"a batch leaf of shape {x.shape} cannot be split over {local} local "
                             "devices: make the batch size a multiple of the device count")
        if jax.process_count() > 1:
            return jax.make_array_from_process_local_data(sharding, x)
        return jax.device_put(x, sharding)

    return jax.tree.map(put, batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``tree`` copied to every device of ``mesh`` (parameters, optimiser and method states)."""
    return jax.device_put(tree, replicated(mesh))


def data_parallel(step: Callable[..., Any], mesh: Mesh, *, batch_argnums: Sequence[int] = (2,),
                  axis: str = AXIS, donate_argnums: Sequence[int] = ()) -> Callable[..., Any]:
    """``step`` jitted for ``mesh``: the arguments in ``batch_argnums`` sharded on their
    leading axis, every other argument and every output replicated.

    ``step`` is the un-jitted step (it may already be jitted: ``jax.jit`` of a jitted
    function re-specialises it with these shardings).
    """
    batch, rep = batch_sharding(mesh, axis=axis), replicated(mesh)
    compiled: dict[int, Callable[..., Any]] = {}   # one jitted function per argument count

    def sharded(*args):
        n = len(args)
        if n not in compiled:
            shardings = tuple(batch if i in set(batch_argnums) else rep for i in range(n))
            compiled[n] = jax.jit(step, in_shardings=shardings, out_shardings=rep,
                                  donate_argnums=tuple(donate_argnums))
        return compiled[n](*args)

    return sharded
