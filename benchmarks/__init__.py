"""Benchmarks: every figure a ratio against a baseline run in the same process.

    python -m benchmarks [--sections overhead flax jacobian heads solvers torch] [--tasks 2 10 40]
                      [--repeats 10] [--out benchmarks/RESULTS.md]
    python -m benchmarks --device-check [--out benchmarks/RESULTS_GPU.md]   # on an accelerator

Sections (each a module here):

* ``overhead``: the jitted train step of every method / the EW step and / the
  bare Jacobian+mean step, on the MLP (1296-512-512, T linear heads, batch 256)
  for each ``--tasks`` and on the Multi-Fashion MultiLeNet (batch 256, T = 2);
  the Gramian-only path beside it;
* ``flax``: the studies' train step on Flax models (an MLP of ``nn.Dense`` layers, the
  MultiLeNet) for every Gramian method by the lean path (:mod:`jaxmtl.flax_gramian`) / the
  Jacobian+mean step and / the EW step, and XLA's peak-memory estimate of the lean UPGrad
  path against the one-vmap Jacobian at ``--memory-tasks`` (MLP, SegNet);
* ``jacobian``: Jacobian time and XLA's peak-memory estimate versus T for the
  full, shared-only and chunked modes, and the Gramian-only path;
* ``solvers``: each weighting alone on fixed Gramians, T = 2 ... 128, against
  the reference solvers (TorchJD's quadprog / cvxpy / Frank-Wolfe ones);
* ``torch``: side by side with TorchJD and LibMTL on the same models (skipped
  when torch is absent: ``pip install -e '.[bench]'``).

Timings are medians of ``--repeats`` calls after a warm-up (compilation
excluded). SDMGrad and MoDo get the main batch's Jacobian as their two extra
batches, so their rows time the aggregation, not the two extra backward passes.
"""
from benchmarks.cli import main

__all__ = ["main"]
