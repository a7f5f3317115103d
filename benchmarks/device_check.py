"""``python -m benchmarks --device-check``: the accelerator checks, in a few minutes.

1. **Every method's jitted step** (:func:`benchmarks.overhead.method_step`: the shared-only
   Jacobian, the method under :func:`jaxmtl.partition`, Adam) on the MLP at ``T = 3``,
   compiled and run on the default device, then on the CPU; the new parameters must agree
   (relative to their largest change) within ``TOLERANCE``. Methods that need held-out
   gradients (Auto-Lambda's ``val_grad``) are not steps of this form and are skipped.
2. **Gramian step / mean step** at ``T = 2, 10, 40``: the studies' step
   (:mod:`benchmarks.flax_steps`: lean Gramian path, Adam) against the Jacobian+mean step,
   on the Flax MLP and the MultiLeNet; target <= 1.3x.
3. **Solver latency**: each Gramian weighting alone on fixed Gramians
   (:mod:`benchmarks.solvers`).

Writes the Markdown report to ``out`` (``benchmarks/RESULTS_GPU.md`` by default) and
returns 1 when a method's step disagrees with the CPU or is not finite.
"""
from __future__ import annotations

import datetime
from pathlib import Path

import jax
import numpy as np

from benchmarks import flax_steps, solvers
from benchmarks.common import EXTRA_BATCHES, machine, mlp_problem
from benchmarks.overhead import method_step
from jaxmtl import registry

TOLERANCE = 1e-3
"""Largest accepted ``|accelerator - CPU| / max |update|`` of a step's new parameters
(TF32 matrix products on NVIDIA GPUs and reordered reductions differ in the 4th digit)."""


def _one_step(name: str, t: int, batch: int, device) -> tuple[dict, dict]:
    with jax.default_device(device):
        params, (x, y), losses = mlp_problem(t, batch=batch)
        step, state = method_step(losses, params, name, t)
        new, _ = step(params, state, x, y)
        return jax.device_get(params), jax.device_get(new)


def check_methods(methods, t: int, batch: int, log=print) -> list[dict]:
    """Each method's step on the default device and on the CPU: agreement and finiteness."""
    cpu, here = jax.devices("cpu")[0], jax.devices()[0]
    rows = []
    for name in methods:
        if registry.get(name).extra_args:
            continue
        before, new = _one_step(name, t, batch, here)
        _, ref = _one_step(name, t, batch, cpu) if here.platform != "cpu" else (before, new)
        change = max(float(np.max(np.abs(r - b))) for r, b in zip(jax.tree.leaves(ref), jax.tree.leaves(before)))
        gap = max(float(np.max(np.abs(n - r))) for n, r in zip(jax.tree.leaves(new), jax.tree.leaves(ref)))
        finite = all(np.all(np.isfinite(n)) for n in jax.tree.leaves(new))
        rel = gap / max(change, 1e-30)
        ok = finite and rel <= TOLERANCE
        rows.append({"method": name, "rel": rel, "ok": ok})
        log(f"{name:14s} {'ok' if ok else 'MISMATCH'}  |device - CPU| / |update| = {rel:.1e}")
    return rows


def run(out: Path, *, tasks=(2, 10, 40), batch: int = 256, lenet_batch: int = 256, lenet: bool = True,
        repeats: int = 10, methods=None, solver_tasks=(2, 8, 32, 128), log=print) -> int:
    methods = [m.name for m in registry.entries()] if methods is None else list(methods)
    text = [f"# jaxmtl device check\n\n{datetime.date.today()}: {machine()}.\n"
            f"`python -m benchmarks --device-check`; medians of {repeats} jitted calls after a warm-up; "
            "ratios against baselines timed in the same process.\n"]
    log("== every method's step against the CPU")
    checked = check_methods(methods, 3, batch, log)
    lines = ["| method | \\|device - CPU\\| / \\|update\\| | agrees |", "|---|---|---|"]
    lines += [f"| {r['method']} | {r['rel']:.1e} | {'yes' if r['ok'] else '**no**'} |" for r in checked]
    skipped = sorted(set(methods) - {r["method"] for r in checked})
    note = f"\n\nNot a step of this form (held-out gradients): {', '.join(skipped)}." if skipped else ""
    extra = (f"\n\n{', '.join(sorted(set(methods) & EXTRA_BATCHES))} get the main batch's Jacobian as their "
             "extra batches.") if set(methods) & EXTRA_BATCHES else ""
    text.append(f"## Every method's step, device against CPU (MLP, T = 3, batch {batch})\n\n"
                + "\n".join(lines) + note + extra + "\n")
    log("== Gramian step / mean step")
    problems = [("MLP", "mlp", t, batch) for t in tasks]
    problems += [("MultiLeNet", "lenet", t, lenet_batch) for t in tasks] if lenet else []
    rows = flax_steps.run(problems, methods, repeats, log)
    text.append("## Gramian methods' step / Jacobian+mean step (lean path; target <= 1.3x)\n\n"
                + flax_steps.markdown(rows, []) + "\n")
    log("== solver latency")
    solver_rows = solvers.run(solver_tasks, methods, repeats, log)
    text.append("## Weighting / solver latency alone on fixed Gramians\n\n" + solvers.markdown(solver_rows) + "\n")
    report = "\n".join(text)
    from jaxmtl.training.results import atomic_write

    atomic_write(Path(out), report)
    log(f"written to {out}")
    return 0 if all(r["ok"] for r in checked) else 1
