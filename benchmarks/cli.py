"""Command line of ``python -m benchmarks``: runs the sections, prints and writes Markdown."""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path


from benchmarks import device_check, flax_steps, heads, jacobian_cost, overhead, solvers, torch_side
from benchmarks.common import METHODS, lenet_problem, machine, mlp_problem
from experiments.cli import at_least, method_names
from jaxmtl import registry

SECTIONS = ("overhead", "flax", "jacobian", "heads", "solvers", "torch")
TITLES = {"overhead": "Method overhead (full train step)",
          "flax": "Gramian methods on Flax models: the studies' step by the lean path",
          "jacobian": "Jacobian cost and peak memory versus T (MLP)",
          "heads": "Shared-only Jacobian: heads differentiated T times or once (MLP)",
          "solvers": "Weighting / solver time alone on fixed Gramians",
          "torch": "Side by side with TorchJD and LibMTL (PyTorch, same machine and threads)"}


def _torch_version() -> str:
    try:
        import torch
        import importlib.metadata as md

        return f"; torch {torch.__version__}, torchjd {md.version('torchjd')}"
    except Exception:  # noqa: BLE001 - any failure means: not installed
        return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="jaxmtl benchmarks (ratios in one process)")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--tasks", nargs="+", type=at_least(1), default=[2, 10, 40])
    parser.add_argument("--jacobian-tasks", nargs="+", type=at_least(1), default=[2, 10, 40, 128])
    parser.add_argument("--solver-tasks", nargs="+", type=at_least(1), default=[2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--methods", nargs="+", default=METHODS, type=method_names(registry.METHODS), metavar="METHOD",
                        help="registry names, labels or LibMTL/TorchJD names (default: every method)")
    parser.add_argument("--repeats", type=at_least(1), default=10)
    parser.add_argument("--no-lenet", action="store_true", help="skip the MultiLeNet problem")
    parser.add_argument("--flax-batch", type=at_least(1), default=256, help="batch of the flax section's MLP")
    parser.add_argument("--lenet-batch", type=at_least(1), default=64, help="batch of the flax section's MultiLeNet")
    parser.add_argument("--memory-tasks", type=at_least(1), default=128, help="T of the flax section's memory rows "
                        "(0: none)")
    parser.add_argument("--device-check", action="store_true",
                        help="the accelerator checks (every method's step against the CPU, Gramian step / "
                             "mean step, solver latency), written to --out (default benchmarks/RESULTS_GPU.md)")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    args = parser.parse_args(argv)
    if args.device_check:
        methods = None if args.methods == METHODS else args.methods
        out = args.out or str(Path(__file__).resolve().parent / "RESULTS_GPU.md")
        return device_check.run(out, tasks=args.tasks, batch=args.flax_batch, lenet_batch=args.lenet_batch,
                                lenet=not args.no_lenet, repeats=args.repeats, methods=methods,
                                solver_tasks=args.solver_tasks)

    text = [f"# jaxmtl benchmarks\n\n{datetime.date.today()}: {machine()}{_torch_version()}.\n"
            f"Median of {args.repeats} jitted calls after a warm-up; ratios are against baselines "
            "timed in the same process.\n"]
    for section in args.sections:
        print(f"== {TITLES[section]}", flush=True)
        log = lambda line: print(line, flush=True)
        if section == "overhead":
            problems = [("MLP", t, mlp_problem(t)) for t in args.tasks]
            if not args.no_lenet:
                problems.append(("MultiLeNet", 2, lenet_problem(2)))
            table = overhead.markdown(overhead.run(problems, args.methods, args.repeats, log))
        elif section == "flax":
            problems = [("MLP", "mlp", t, args.flax_batch) for t in args.tasks]
            if not args.no_lenet:
                problems += [("MultiLeNet", "lenet", t, args.lenet_batch) for t in args.tasks]
            mem = flax_steps.memory(args.memory_tasks, log) if args.memory_tasks else []
            methods = flax_steps.GRAMIAN_METHODS if args.methods == METHODS else args.methods
            table = flax_steps.markdown(flax_steps.run(problems, methods, args.repeats, log), mem)
        elif section == "jacobian":
            table = jacobian_cost.markdown(jacobian_cost.run(args.jacobian_tasks, args.repeats, log))
        elif section == "heads":
            table = heads.markdown(heads.run(args.jacobian_tasks, args.repeats, log))
        elif section == "solvers":
            table = solvers.markdown(solvers.run(args.solver_tasks, args.methods, args.repeats, log))
        else:
            problems = [("MLP", "mlp", t, mlp_problem(t)) for t in args.tasks]
            if not args.no_lenet:
                problems.append(("MultiLeNet", "lenet", 2, lenet_problem(2)))
            rows = torch_side.run(problems, args.repeats, log)
            table = torch_side.markdown(rows) if rows else "Skipped: torch or torchjd is not installed."
        text.append(f"## {TITLES[section]}\n\n{table}\n")
    report = "\n".join(text)
    print(report)
    if args.out:
        from jaxmtl.training.results import atomic_write

        atomic_write(Path(args.out), report)
    return 0
