"""Multi-host data-parallel training with a jaxmtl method: the runnable example.

Every process (one per host: a TPU-pod worker, a GPU node) runs the same command::

    python -m experiments.multihost --coordinator HOST0:1234 --num-processes N --process-id I
    python -m experiments.multihost --auto      # TPU pods, SLURM: jax.distributed finds them

and one machine can try it with two CPU processes of two fake devices each::

    export XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu
    python -m experiments.multihost --coordinator localhost:1234 --num-processes 2 --process-id 0 &
    python -m experiments.multihost --coordinator localhost:1234 --num-processes 2 --process-id 1

What each process does, in the order a real training script needs it:

1. ``jax.distributed.initialize`` before any other JAX call (skipped for one process);
2. one mesh over *every* device of every process (:func:`jaxmtl.sharding.data_mesh`);
3. the same parameters and method state everywhere (same seed), replicated over the mesh;
4. each step, only *its own rows* of the global batch (here drawn from one seeded generator
   and sliced by process, so the answer does not depend on the process count; a real
   loader reads its shard of the files), assembled into the global batch by
   :func:`jaxmtl.sharding.shard_batch`;
5. the step jitted with shardings (:func:`jaxmtl.sharding.data_parallel`): the Jacobian,
   the Gramian and the method see the full global batch, as on one device.

The model is a shared tanh trunk with one linear head per task on a synthetic regression
(``--tasks`` tasks); the method is any name in :mod:`jaxmtl.registry` that needs no extra
arguments. Process 0 prints the losses, and every process ends with one JSON line of the
final losses and parameter checksum (identical on every process, and equal to a
one-process run on as many devices).
"""
from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxmtl
from experiments.cli import UsageError, at_least, run_main
from jaxmtl import sharding


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=at_least(1), default=1, help="the number of processes (hosts)")
    parser.add_argument("--process-id", type=int, default=0, help="this process's rank, 0 to N-1")
    parser.add_argument("--auto", action="store_true",
                        help="let jax.distributed.initialize() find the cluster (TPU pods, SLURM)")
    parser.add_argument("--method", default="upgrad",
                        help="the MTL method (registry name, label or LibMTL/TorchJD name)")
    parser.add_argument("--tasks", type=at_least(1), default=3, help="the number of tasks of the toy regression")
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="global batch size")
    parser.add_argument("--steps", type=at_least(1), default=20, help="training steps")
    parser.add_argument("--lr", type=at_least(0.0, float, strict=True), default=1e-2, help="Adam's learning rate")
    args = parser.parse_args(argv)
    if args.num_processes > 1 and args.coordinator is None and not args.auto:
        parser.error("--num-processes > 1 needs --coordinator HOST:PORT (or --auto)")
    if not args.auto and not 0 <= args.process_id < args.num_processes:
        parser.error(f"--process-id {args.process_id}: a rank from 0 to {args.num_processes - 1} "
                     f"(--num-processes {args.num_processes})")
    try:
        info = jaxmtl.registry.get(args.method)
    except ValueError as err:
        parser.error(f"--method: {err}")
    args.method = info.name
    if info.extra_batches or info.extra_args:
        parser.error(f"{args.method} needs extra batches or arguments; pick another method")
    return args


def loss_fn(params, batch):
    """Per-task mean squared errors ``f32[T]`` of the trunk-and-heads regressor."""
    h = jnp.tanh(batch["x"] @ params["trunk"])
    return jnp.mean((h @ params["heads"].T - batch["y"]) ** 2, axis=0)


def main(argv=None) -> int:
    args = parse(argv)
    if args.auto:
        jax.distributed.initialize()
    elif args.num_processes > 1:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    rank, count = jax.process_index(), jax.process_count()
    mesh = sharding.data_mesh()
    if args.batch_size % mesh.size:
        raise UsageError(f"--batch-size {args.batch_size} is not a multiple of the {mesh.size} devices")
    if rank == 0:
        print(f"{count} process(es), {mesh.size} devices ({jax.default_backend()}), method {args.method}",
              flush=True)

    t, d, width = args.tasks, 8, 16
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    params = {"trunk": 0.3 * jax.random.normal(keys[0], (d, width)),
              "heads": 0.3 * jax.random.normal(keys[1], (t, width))}
    target = jax.random.normal(keys[2], (d, t))
    shared = {"trunk": True, "heads": False}
    info = jaxmtl.registry.get(args.method)
    method = info.build(t, seed=0) if info.random else info.build(t)
    tx = optax.chain(jaxmtl.partition(method, shared), optax.adam(args.lr))
    grads = jaxmtl.value_and_jacobian(loss_fn, shared=shared)

    def step(params, opt_state, batch):
        losses, task_grads = grads(params, batch)
        updates, opt_state = tx.update(task_grads, opt_state, params, losses=losses)
        return optax.apply_updates(params, updates), opt_state, losses

    run = sharding.data_parallel(step, mesh)
    params, opt_state = sharding.replicate((params, tx.init(params)), mesh)
    rows = args.batch_size // count                    # this process's part of each batch
    rng = np.random.default_rng(0)
    for i in range(args.steps):
        x = rng.normal(size=(args.batch_size, d)).astype(np.float32)
        y = np.tanh(x @ np.asarray(target)).astype(np.float32)
        local = {"x": x[rank * rows:(rank + 1) * rows], "y": y[rank * rows:(rank + 1) * rows]}
        params, opt_state, losses = run(params, opt_state, sharding.shard_batch(local, mesh))
        if rank == 0 and (i % 5 == 0 or i == args.steps - 1):
            print(f"step {i:3d}  losses " + " ".join(f"{v:.4f}" for v in np.asarray(losses)), flush=True)
    checksum = float(sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree.leaves(params)))
    print(json.dumps({"process": rank, "losses": np.asarray(losses).tolist(), "checksum": checksum}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
