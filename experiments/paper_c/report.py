"""Tables and plots of the paper C study (:mod:`experiments.paper_c.uniform_vs_specialized`).

delta-m is reported in paper C's convention (per-task relative change averaged
over tasks, **higher is better**, "Δm C") with paper A's beside it (mean over
metrics of the relative drop, **lower is better**, "Δm A"; with one metric per
task it is Δm C negated). Both are on the test set at each run's best-validation
epoch, against the best single-task run of each task; mean ± std over seeds.
"""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.report import markdown_table, mean_std, png_bytes  # noqa: E402
from experiments.selection import (as_metrics, directions, primary_metric, select_epoch, split_delta_m,  # noqa: E402
                                   stl_baselines)
from jaxmtl import registry  # noqa: E402
from jaxmtl.training import delta_m  # noqa: E402

UNIFORM = "mean"
"""Unit. Scal., the mean of the task losses (the registry's ``'mean'``)."""

def label(method: str) -> str:
    return registry.get(method).label


def problem_of(spec: dict) -> str:
    return "+".join(spec["tasks"])


def is_fixed(spec: dict) -> bool:
    """A run with fixed weights from an SMTO's run."""
    return "weights" in spec.get("method_kwargs", {})


def best_epoch(record: dict, base_val: dict) -> dict | None:
    """The epoch with the best validation delta-m in paper C's convention (``None`` without one)."""
    return select_epoch(record, base_val, convention="task")


def val_score(record: dict, base_val: dict) -> float:
    """Validation delta-m (paper C, higher is better) at the run's best epoch; -inf without one."""
    best = best_epoch(record, base_val)
    return -np.inf if best is None else split_delta_m(record, best["val"], base_val, "task")


def per_task_change(record: dict, split: dict, baselines: dict) -> list[float]:
    """Relative improvement (%) of each task over its baseline, positive is better (paper C)."""
    metrics = as_metrics(split, record["tasks"])
    return [delta_m({t: metrics[t]}, baselines, directions(record), convention="task") for t in record["tasks"]]


def group_key(spec: dict) -> str:
    """A run's configuration: its spec without the seed."""
    return json.dumps({k: v for k, v in spec.items() if k != "seed"}, sort_keys=True)


def test_scores(runs: list[dict], base_val: dict, base_test: dict) -> list[dict]:
    """Per finite run: test per-task change, Δm C and Δm A at the best-validation epoch."""
    out = []
    for r in runs:
        best = best_epoch(r, base_val)
        if best is None:
            continue
        out.append({"seed": r["spec"]["seed"], "per_task": per_task_change(r, best["test"], base_test),
                    "dm_c": split_delta_m(r, best["test"], base_test, "task"),
                    "dm_a": split_delta_m(r, best["test"], base_test, "metric"), "epoch": best["epoch"]})
    return out


def config_text(spec: dict) -> str:
    extra = "".join(f", {k}={v:g}" for k, v in sorted(spec.get("method_kwargs", {}).items()))
    return f"lr {spec['lr']:g}, dropout {spec.get('dropout', 0.0):g}{extra}"


def mean_trace(record: dict) -> float:
    return float(np.mean([x[1] for x in record["trace"]])) if record["trace"] else float("nan")


def report(records: list[dict], best: dict, cfg: dict) -> tuple[str, dict[str, bytes]]:
    """``(markdown, {figure name: PNG})`` of a finished study (see the module docstring)."""
    base_val, base_test = stl_baselines(records, per_seed=False)
    metric = {t: primary_metric(r, t) for r in records for t in r["tasks"]}
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(group_key(r["spec"]), []).append(r)
    problems = [p for p in cfg["problems"] if any(k[0] == p for k in best)]
    scores = {k: test_scores(groups[group_key(r["spec"])], base_val, base_test) for k, r in best.items()}
    means = {k: float(np.mean([x["dm_c"] for x in v])) for k, v in scores.items() if v}
    ranks: dict[tuple[str, str], int] = {}
    for p in problems:
        order = sorted((k for k in means if k[0] == p), key=lambda k: -means[k])
        ranks.update({k: i + 1 for i, k in enumerate(order)})
    methods = [m for m in cfg["methods"] if any((p, m) in best for p in problems)]

    lines = ["## Single-task baselines\n",
             markdown_table(["task", "metric", "val", "test"],
                            [[t, metric[t], f"{base_val[t][metric[t]]:.4f}",
                              f"{base_test[t][metric[t]]:.4f}"] for t in sorted(base_val)]),
             "\nAccuracy higher is better, reconstruction error (per-pixel MSE) lower is better; the best "
             "single-task run of the grid by validation.\n"]
    for p in problems:
        tasks = next(r["spec"]["tasks"] for k, r in best.items() if k[0] == p)
        rows = []
        for m in methods:
            s = scores.get((p, m))
            if not s:
                continue
            rows.append([label(m), config_text(best[(p, m)]["spec"]),
                         *[mean_std([x["per_task"][i] for x in s]) for i in range(len(tasks))],
                         mean_std([x["dm_c"] for x in s]), mean_std([x["dm_a"] for x in s]),
                         f"#{ranks[(p, m)]}", len(s)])
        lines += [f"## {p}\n", markdown_table(["method", "chosen config", *[f"Δ {t} (%, ↑)" for t in tasks],
                                                "Δm C (%, ↑)", "Δm A (%, ↓)", "rank", "seeds"], rows), ""]
    pairs = [p for p in problems if len(p.split("+")) == 2]
    overview = []
    for m in methods:
        cells = [label(m), *[f"{means[(p, m)]:.2f} (#{ranks[(p, m)]})" if (p, m) in means else "-"
                             for p in problems]]
        pr = [ranks[(p, m)] for p in pairs if (p, m) in ranks]
        overview.append(cells + [f"{np.mean(pr):.2f}" if pr else "-"])
    lines += ["## Overview: test Δm C (%, ↑) and rank per problem\n",
              markdown_table(["method", *problems, "mean rank (pairs)"], overview), ""]

    fixed = fixed_scores(records, groups, base_val, base_test, problems)
    lines += fixed_table(fixed, scores)
    lines += harder_table(problems, methods, means, best)
    lines += ["## Interference (mean over training of mean_t cos(g_t, mean_s g_s), first seed)\n",
              markdown_table(["method", *problems],
                             [[label(m), *[f"{mean_trace(best[(p, m)]):.3f}" if (p, m) in best else "-"
                                           for p in problems]] for m in methods]), ""]
    lines += findings(problems, methods, means, scores, fixed)
    figures = {"summary": plot_dm(problems, methods, scores), "weights": plot_weights(problems, methods, best),
               "interference": plot_interference(problems, methods, best)}
    return "\n".join(lines) + "\n", figures


def fixed_runs(records: list[dict], problem: str) -> dict[str, list[dict]]:
    """Fixed-weights runs of ``problem`` by origin (``'<smto>/<rule>'``)."""
    out: dict[str, list[dict]] = {}
    for r in records:
        s = r["spec"]
        if is_fixed(s) and problem_of(s) == problem:
            out.setdefault(s["origin"], []).append(r)
    return out


def fixed_scores(records, groups, base_val, base_test, problems) -> dict[tuple[str, str], tuple[list, list]]:
    """``{(problem, '<smto>/<rule>'): (weights, test scores)}`` of the fixed-weights runs."""
    out = {}
    for p in problems:
        for origin, runs in sorted(fixed_runs(records, p).items()):
            found = test_scores(groups[group_key(runs[0]["spec"])], base_val, base_test)
            if found:
                out[(p, origin)] = (runs[0]["spec"]["method_kwargs"]["weights"], found)
    return out


def fixed_table(fixed: dict, scores: dict) -> list[str]:
    rows = []
    for (p, origin), (weights, runs) in fixed.items():
        smto, rule = origin.split("/")
        ref, uni = scores.get((p, smto), []), scores.get((p, UNIFORM), [])
        diff = np.mean([x["dm_c"] for x in runs]) - np.mean([x["dm_c"] for x in ref])
        rows.append([p, label(smto), rule, "[" + ", ".join(f"{w:.3g}" for w in weights) + "]",
                     mean_std([x["dm_c"] for x in ref]), mean_std([x["dm_c"] for x in runs]), f"{diff:+.2f}",
                     mean_std([x["dm_c"] for x in uni])])
    if not rows:
        return []
    return ["## Fixed weights from an SMTO's run\n",
            markdown_table(["problem", "SMTO", "rule", "weights", "SMTO Δm C", "fixed Δm C", "fixed - SMTO",
                            "Unit. Scal. Δm C"], rows),
            "\nRules: mean over epochs of the per-epoch mean weights, their EMA (beta 0.9), the last "
            "epoch's; retrained with `jaxmtl.linear(weights=...)` at the SMTO's configuration, every seed.\n"]


def harder_table(problems, methods, means, best) -> list[str]:
    rows = []
    for p in problems:
        if (p, UNIFORM) not in means:
            continue
        uni = means[(p, UNIFORM)]
        smtos = {m: means[(p, m)] for m in methods if m != UNIFORM and (p, m) in means}
        if not smtos:
            continue
        top = max(smtos, key=smtos.get)
        rows.append([p, len(p.split("+")), f"{uni:.2f}", f"{label(top)} {smtos[top]:.2f}",
                     f"{smtos[top] - uni:+.2f}", f"{sum(v > uni for v in smtos.values())} of {len(smtos)}",
                     f"{mean_trace(best[(p, UNIFORM)]):.3f}"])
    return ["## Harder-problem axis: do SMTOs start to matter?\n",
            markdown_table(["problem", "tasks", "Unit. Scal. Δm C", "best SMTO Δm C", "gap", "SMTOs above Unit. Scal.",
                            "Unit. Scal. interference"], rows), ""]


def findings(problems, methods, means, scores, fixed) -> list[str]:
    """Plain sentences: which methods beat Unit. Scal. (and whether every seed does), and
    whether fixed weights match their SMTO (within the spread of the SMTO's seeds)."""
    out = ["## Findings (generated)\n"]
    for p in problems:
        if (p, UNIFORM) not in means:
            continue
        u = [x["dm_c"] for x in scores[(p, UNIFORM)]]
        better, clearly = [], []
        for m in methods:
            if m == UNIFORM or (p, m) not in means or means[(p, m)] <= means[(p, UNIFORM)]:
                continue
            better.append(label(m))
            if min(x["dm_c"] for x in scores[(p, m)]) > max(u):
                clearly.append(label(m))
        out.append(f"- {p}: {len(better)} of {len(methods) - 1} methods beat Unit. Scal. on mean test Δm C "
                   f"({', '.join(better) or 'none'}); every seed above every Unit. Scal. seed: "
                   f"{', '.join(clearly) or 'none'}.")
    for (p, origin), (_, runs) in fixed.items():
        smto, rule = origin.split("/")
        ref = [x["dm_c"] for x in scores.get((p, smto), [])]
        got = float(np.mean([x["dm_c"] for x in runs]))
        inside = min(ref) <= got <= max(ref) if len(ref) > 1 else None
        verdict = {True: "within", False: "outside", None: "(one seed: no spread) beside"}[inside]
        out.append(f"- {p}: fixed {rule} weights of {label(smto)}: Δm C {got:.2f} vs {np.mean(ref):.2f}, "
                   f"{verdict} the range of the SMTO's seeds.")
    return out + [""]


def plot_dm(problems, methods, scores) -> bytes:
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 4), squeeze=False)
    for ax, p in zip(axes[0], problems):
        ms = [m for m in methods if scores.get((p, m))]
        for i, m in enumerate(ms):
            vals = [x["dm_c"] for x in scores[(p, m)]]
            ax.bar(i, np.mean(vals), yerr=np.std(vals) if len(vals) > 1 else None, capsize=3,
                   color="tab:gray" if m == UNIFORM else "tab:blue")
            ax.scatter([i] * len(vals), vals, color="k", s=8, zorder=3)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(ms)), [label(m) for m in ms], rotation=40, ha="right", fontsize=8)
        ax.set_title(p)
        ax.set_ylabel("test Δm C (%, higher is better)")
    fig.tight_layout()
    return png_bytes(fig)


def plot_weights(problems, methods, best) -> bytes:
    fig, axes = plt.subplots(len(problems), len(methods), figsize=(2.6 * len(methods), 2.2 * len(problems)),
                             squeeze=False)
    for i, p in enumerate(problems):
        for j, m in enumerate(methods):
            ax = axes[i][j]
            r = best.get((p, m))
            trace = [x for x in (r["trace"] if r else []) if x[2] is not None]
            if trace:
                steps = [x[0] for x in trace]
                w = np.asarray([x[2] for x in trace])
                for t, task in enumerate(r["spec"]["tasks"]):
                    ax.plot(steps, w[:, t], label=task, lw=1)
                ax.legend(fontsize=6)
            ax.set_title(f"{label(m)} / {p}", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.supxlabel("step")
    fig.supylabel("recorded task weight")
    fig.tight_layout()
    return png_bytes(fig)


def plot_interference(problems, methods, best) -> bytes:
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.6), squeeze=False)
    for ax, p in zip(axes[0], problems):
        for m in methods:
            r = best.get((p, m))
            if r and r["trace"]:
                ax.plot([x[0] for x in r["trace"]], [x[1] for x in r["trace"]], label=label(m), lw=1)
        ax.set_title(p)
        ax.set_xlabel("step")
        ax.set_ylabel("mean_t cos(g_t, mean_s g_s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)
