"""Data-parallel step time on N devices against one, same process (``jaxmtl.sharding``).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m benchmarks.sharding [--devices 8]

On CPU the N devices are faked by that flag (JAX reads it when it starts): they
share the machine's cores, so the ratio measures the partitioning overhead, not
a speed-up; on a multi-GPU or TPU host it is the real scaling.
"""
from __future__ import annotations

import argparse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    import jax
    import optax

    import jaxmtl
    from benchmarks.common import machine, median_time, mlp_problem, shared_mask

    params, (x, y), losses = mlp_problem(args.tasks)
    shared = shared_mask(params)
    grads = jaxmtl.value_and_jacobian(losses, shared=shared)
    print(machine())
    print(f"MLP, T = {args.tasks}, batch {x.shape[0]}: step = Jacobian + method + Adam")
    for name in ("ew", "upgrad", "nash_mtl"):
        tx = optax.chain(jaxmtl.partition(jaxmtl.registry.build(name, args.tasks), shared), optax.adam(1e-3))

        def step(p, s, x, y):
            value, g = grads(p, x, y)
            u, s = tx.update(g, s, p, losses=value)
            return optax.apply_updates(p, u), s, value

        one = median_time(jax.jit(step), params, tx.init(params), x, y, repeats=args.repeats)
        mesh = jaxmtl.sharding.data_mesh(args.devices)
        p, s = jaxmtl.sharding.replicate((params, tx.init(params)), mesh)
        xs, ys = jaxmtl.sharding.shard_batch((x, y), mesh)
        many = median_time(jaxmtl.sharding.data_parallel(step, mesh, batch_argnums=(2, 3)), p, s, xs, ys,
                           repeats=args.repeats)
        print(f"{name:10s} 1 device {1e3 * one:8.1f} ms   {args.devices} devices {1e3 * many:8.1f} ms   "
              f"ratio {many / one:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
