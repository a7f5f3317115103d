"""jaxmtl side by side with TorchJD and LibMTL (PyTorch) on the same models, batch and methods.

Needs the ``bench`` extra (``pip install -e '.[bench]'``: torch CPU and torchjd)
and, for LibMTL, ``pip install --no-deps LibMTL==1.1.5`` (its only PyPI release;
its package ``__init__`` imports torchvision, so the ``weighting`` sub-package is
loaded on its own). Every piece that is missing is skipped with a message.
Torch runs with as many threads as XLA's CPU client uses (all cores), on the
GPU when there is one (timings synchronise the device).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import statistics
import sys
import time
import types

import jax

import jaxmtl
from benchmarks import overhead
from benchmarks.common import median_time, shared_mask


def _torch_modules(kind: str, t: int):
    import torch
    from torch import nn

    if kind == "mlp":
        trunk = nn.Sequential(nn.Linear(1296, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU())
        heads = nn.ModuleList(nn.Linear(512, 10) for _ in range(t))
        x = torch.randn(256, 1296)
    else:
        trunk = nn.Sequential(nn.Conv2d(1, 10, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(10, 20, 5),
                              nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(720, 50), nn.ReLU())
        heads = nn.ModuleList(nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10)) for _ in range(t))
        x = torch.rand(256, 1, 36, 36)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return trunk.to(dev), heads.to(dev), x.to(dev), torch.randint(0, 10, (256, t)).to(dev)


def _libmtl_weighting(name: str):
    """``LibMTL.weighting.<name>`` without running LibMTL's package ``__init__``."""
    if "LibMTL" not in sys.modules:
        spec = importlib.util.find_spec("LibMTL")
        if spec is None:
            raise ImportError("LibMTL is not installed")
        pkg = types.ModuleType("LibMTL")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["LibMTL"] = pkg
    return getattr(importlib.import_module(f"LibMTL.weighting.{name}"), name)


def torch_rows(kind: str, t: int, repeats: int, log=print) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torchjd.aggregation import MGDA, Mean, UPGrad
    from torchjd.autojac import jac_to_grad, mtl_backward

    torch.set_num_threads(os.cpu_count() or 1)
    trunk, heads, x, y = _torch_modules(kind, t)
    params = list(trunk.parameters()) + list(heads.parameters())
    opt = torch.optim.Adam(params, 1e-3)

    def losses():
        f = trunk(x)
        return f, [F.cross_entropy(h(f), y[:, i]) for i, h in enumerate(heads)]

    def clear_jac():
        for p in trunk.parameters():
            if hasattr(p, "jac"):
                del p.jac

    def jac_only():
        opt.zero_grad()
        f, ls = losses()
        mtl_backward(ls, f)
        clear_jac()

    def torchjd_step(aggregator):
        def step():
            opt.zero_grad()
            f, ls = losses()
            mtl_backward(ls, f)
            jac_to_grad(list(trunk.parameters()), aggregator)
            opt.step()
        return step

    def ew():
        opt.zero_grad()
        sum(losses()[1]).backward()
        opt.step()

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def timed(fn):
        for _ in range(2):
            fn()
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times)

    out = {"EW step": timed(ew), "Jacobian (TorchJD mtl_backward)": timed(jac_only),
           "mean step": timed(torchjd_step(Mean())), "upgrad step": timed(torchjd_step(UPGrad())),
           "mgda step": timed(torchjd_step(MGDA()))}
    try:
        out.update(_libmtl_steps(trunk, heads, losses, opt, timed, log))
    except ImportError as err:
        log(f"LibMTL skipped: {err}")
    return out


def _libmtl_steps(trunk, heads, losses, opt, timed, log) -> dict[str, float]:
    out = {}
    for name, kwargs in (("MGDA", {"mgda_gn": "none"}), ("PCGrad", {}), ("CAGrad", {"calpha": 0.4, "rescale": 1})):
        base = _libmtl_weighting(name)

        class Model(base):
            def __init__(self):
                super().__init__()
                self.trunk, self.heads = trunk, heads
                self.task_num, self.rep_grad = len(heads), False
                self.device = next(trunk.parameters()).device

            def get_share_params(self):
                return self.trunk.parameters()

            def zero_grad_share_params(self):
                self.trunk.zero_grad(set_to_none=False)

        model = Model()

        def step(model=model, kwargs=kwargs):
            opt.zero_grad()
            model.backward(losses()[1], **kwargs)
            opt.step()

        try:
            out[f"LibMTL {name} step"] = timed(step)
        except Exception as err:  # noqa: BLE001 - e.g. LibMTL 1.1.5's CAGrad hard-codes 3 tasks
            log(f"LibMTL {name} failed at T={len(heads)}: {type(err).__name__}: {err}")
    return out


def jax_rows(problem, repeats: int) -> dict[str, float]:
    params, (x, y), losses = problem
    t = losses(params, x, y).shape[0]
    jac = jaxmtl.value_and_jacobian(losses, shared=shared_mask(params))
    timed = lambda made: 1e3 * median_time(made[0], params, made[1], x, y, repeats=repeats)
    return {"EW step": timed(overhead.ew_step(losses, params)),
            "Jacobian (jaxmtl shared-only)": 1e3 * median_time(jax.jit(lambda p, a, b: jac(p, a, b)[1]),
                                                               params, x, y, repeats=repeats),
            "mean step": timed(overhead.method_step(losses, params, "mean", t)),
            "upgrad step": timed(overhead.method_step(losses, params, "upgrad", t)),
            "mgda step": timed(overhead.method_step(losses, params, "mgda", t)),
            "pcgrad step": timed(overhead.method_step(losses, params, "pcgrad", t)),
            "cagrad step": timed(overhead.method_step(losses, params, "cagrad", t))}


PAIRS = [("EW step", "EW step"), ("Jacobian (jaxmtl shared-only)", "Jacobian (TorchJD mtl_backward)"),
         ("mean step", "mean step"), ("upgrad step", "upgrad step"), ("mgda step", "mgda step"),
         ("mgda step", "LibMTL MGDA step"), ("pcgrad step", "LibMTL PCGrad step"),
         ("cagrad step", "LibMTL CAGrad step")]


def run(problems, repeats: int, log=print) -> list[dict]:
    """``problems``: ``(label, kind, t, jax_problem)``; ``[]`` when torch/torchjd are missing."""
    try:
        importlib.import_module("torch")
        importlib.import_module("torchjd")
    except ImportError as err:
        log(f"side-by-side skipped ({err}); install with pip install -e '.[bench]'")
        return []
    rows = []
    for label, kind, t, problem in problems:
        ours, theirs = jax_rows(problem, repeats), torch_rows(kind, t, repeats, log)
        for mine, other in PAIRS:
            if other in theirs:
                rows.append({"problem": label, "T": t, "jaxmtl": mine, "torch": other,
                             "ours_ms": ours[mine], "torch_ms": theirs[other],
                             "ratio": ours[mine] / theirs[other]})
                log(f"{label} T={t:3d} {mine:30s} {ours[mine]:8.1f} ms | {other:32s} "
                    f"{theirs[other]:8.1f} ms | x{ours[mine] / theirs[other]:.2f}")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| problem | T | jaxmtl | PyTorch library | jaxmtl (ms) | PyTorch (ms) | jaxmtl / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['problem']} | {r['T']} | {r['jaxmtl']} | {r['torch']} | {r['ours_ms']:.1f} | "
              f"{r['torch_ms']:.1f} | {r['ratio']:.2f} |" for r in rows]
    return "\n".join(lines)
