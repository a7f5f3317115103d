"""Tables and plots of the paper C study (:mod:`experiments.paper_c.uniform_vs_specialized`).

delta-m is reported in paper C's convention (per-task relative change averaged
over tasks, **higher is better**, "Δm C") with paper A's beside it (mean over
metrics of the relative drop, **lower is better**, "Δm A"; with one metric per
task it is Δm C negated). Both are on the test set at each run's best-validation
epoch, against the single-task references (each task's best configuration, its
metrics averaged over its seeds: paper C's ``eval_single_task.py``); mean ± sample
standard deviation over the seeds of each method's chosen configuration (chosen on
the mean over the validation seeds, paper C's ``eval_multi_task.py``). Plots draw
the same mean and standard deviation.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.report import markdown_table, mean_std, png_bytes  # noqa: E402
from experiments.selection import (as_metrics, best_configuration, directions, primary_metric,  # noqa: E402
                                   select_epoch, split_delta_m, stl_baselines)
from jaxmtl import registry  # noqa: E402
from jaxmtl.training import delta_m  # noqa: E402

UNIFORM = "mean"
"""Unit. Scal., the mean of the task losses (the registry's ``'mean'``)."""
PAPER_CL_RR = {"cagrad": -2.137, "imtl": -2.244, "famo": -2.666, "nash_mtl": -3.063, "mean": -8.952}
"""Paper C's Table 3 (Multi-MNIST CL+RR, test Δm C in %, mean over 10 runs) for the methods we
could read; 10 of its 15 SMTOs are above Unit. Scal. there."""
PAPER_ABOVE_UNIFORM = (10, 15)


def label(method: str) -> str:
    """The method's name in the tables (RotoGrad: its scaling and, in this study, its rotations)."""
    return "RotoGrad" if method == "rotograd" else registry.get(method).label


def problem_of(spec: dict, task_sets: dict) -> str:
    """The name of a run's problem (its task set) in ``task_sets`` (``{name: task names}``)."""
    return next(name for name, tasks in task_sets.items() if list(tasks) == list(spec["tasks"]))


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


def test_scores(runs: list[dict], base_val: dict, base_test: dict) -> list[dict]:
    """Per finite run: test metrics, per-task change, Δm C and Δm A at the best-validation epoch."""
    out = []
    for r in runs:
        best = best_epoch(r, base_val)
        if best is None:
            continue
        metrics = as_metrics(best["test"], r["tasks"])
        out.append({"seed": r["spec"]["seed"], "per_task": per_task_change(r, best["test"], base_test),
                    "metric": [metrics[t][primary_metric(r, t)] for t in r["tasks"]],
                    "dm_c": split_delta_m(r, best["test"], base_test, "task"),
                    "dm_a": split_delta_m(r, best["test"], base_test, "metric"), "epoch": best["epoch"]})
    return out


def best_configs(records: list[dict], base_val: dict, seeds: list[int],
                 task_sets: dict) -> dict[tuple[str, str], dict]:
    """Per (problem, method): the configuration with the best mean validation Δm C over ``seeds``
    (paper C's rule), as ``runs`` (all of its runs, every seed), ``val_dm`` (that mean) and
    ``lrs`` (every learning rate tried for the pair, sorted)."""
    candidates: dict[tuple[str, str], list] = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is None and not is_fixed(s):
            candidates.setdefault((problem_of(s, task_sets), s["method"]), []).append(r)
    best = {}
    for k, runs in candidates.items():
        chosen = best_configuration(runs, lambda r: -val_score(r, base_val), seeds)
        scores = [val_score(r, base_val) for r in chosen if r["spec"]["seed"] in seeds]
        best[k] = {"runs": sorted(chosen, key=lambda r: r["spec"]["seed"]), "val_dm": float(np.mean(scores)),
                   "lrs": sorted({r["spec"]["lr"] for r in runs})}
    return best


def config_text(spec: dict) -> str:
    extra = "".join(f", {k}={v:g}" for k, v in sorted(spec.get("method_kwargs", {}).items())
                    if isinstance(v, (int, float)) and k != "lr")
    return f"lr {spec['lr']:g}, dropout {spec.get('dropout', 0.0):g}{extra}"


def mean_trace(record: dict) -> float:
    return float(np.mean([x[1] for x in record["trace"]])) if record["trace"] else float("nan")


def mean_ranks(problem_methods: list[str], scores: dict, higher: list[bool]) -> dict[str, float]:
    """Paper C's mean rank within one problem: methods ranked (1 = best) on each task metric's
    mean over seeds, ranks averaged within a task (one metric per task here), then over tasks."""
    means = {m: np.mean([x["metric"] for x in scores[m]], axis=0) for m in problem_methods}
    ranks = {m: [] for m in problem_methods}
    for t, up in enumerate(higher):
        order = sorted(problem_methods, key=lambda m: -means[m][t] if up else means[m][t])
        for i, m in enumerate(order):
            ranks[m].append(i + 1)
    return {m: float(np.mean(r)) for m, r in ranks.items()}


def report(records: list[dict], cfg: dict) -> tuple[str, dict[str, bytes]]:
    """``(markdown, {figure name: PNG})`` of a finished study (see the module docstring)."""
    seeds = cfg["seeds"][:cfg["val_seeds"]]
    base_val, base_test = stl_baselines(records, rule="config_mean", choose_seeds=seeds)
    metric = {t: primary_metric(r, t) for r in records for t in r["tasks"]}
    best = best_configs(records, base_val, seeds, cfg["task_sets"])
    first = {k: c["runs"][0] for k, c in best.items()}
    problems = [p for p in cfg["problems"] if any(k[0] == p for k in best)]
    scores = {k: test_scores(c["runs"], base_val, base_test) for k, c in best.items()}
    means = {k: float(np.mean([x["dm_c"] for x in v])) for k, v in scores.items() if v}
    methods = [m for m in cfg["methods"] if any((p, m) in best for p in problems)]

    lines = ["## Single-task references\n",
             markdown_table(["task", "metric", "val", "test"],
                            [[t, metric[t], f"{base_val[t][metric[t]]:.4f}",
                              f"{base_test[t][metric[t]]:.4f}"] for t in sorted(base_val)]),
             "\nAccuracy higher is better, reconstruction error (per-pixel MSE of the normalised image) lower "
             "is better; each task's best configuration on the mean over the validation seeds, its metrics "
             "averaged over all its seeds.\n"]
    ranks = {}
    for p in problems:
        tasks = first[next(k for k in best if k[0] == p)]["tasks"]
        here = [m for m in methods if scores.get((p, m))]
        higher = [directions(first[(p, here[0])])[metric[t]] for t in tasks] if here else []
        mr = mean_ranks(here, {m: scores[(p, m)] for m in here}, higher) if here else {}
        ranks.update({(p, m): v for m, v in mr.items()})
        rows = []
        for m in here:
            s = scores[(p, m)]
            rows.append([label(m), config_text(first[(p, m)]["spec"]),
                         *[mean_std([x["metric"][i] for x in s], "{:.4f}") for i in range(len(tasks))],
                         *[mean_std([x["per_task"][i] for x in s]) for i in range(len(tasks))],
                         mean_std([x["dm_c"] for x in s]), mean_std([x["dm_a"] for x in s]),
                         f"{mr[m]:.2f}", len(s)])
        lines += [f"## {p}\n", markdown_table(
            ["method", "chosen config", *[f"{t} {metric[t]} ({'↑' if h else '↓'})" for t, h in zip(tasks, higher)],
             *[f"Δ {t} (%, ↑)" for t in tasks], "Δm C (%, ↑)", "Δm A (%, ↓)", "MR (↓)", "seeds"], rows),
            "\nMR: paper C's mean rank (each task metric ranked, averaged within the task, then over tasks; "
            "Δm not ranked).\n"]
    overview = [[label(m), *[f"{means[(p, m)]:.2f} (MR {ranks[(p, m)]:.2f})" if (p, m) in means else "-"
                             for p in problems]] for m in methods]
    lines += ["## Overview: test Δm C (%, ↑) and mean rank per problem\n",
              markdown_table(["method", *problems], overview), ""]
    lines += paper_table(scores)
    fixed = fixed_scores(records, base_val, base_test, problems, cfg["task_sets"])
    lines += fixed_table(fixed, scores)
    lines += harder_table(problems, methods, means, first)
    lines += ["## Interference (mean over training of mean_t cos(g_t, mean_s g_s), first seed)\n",
              markdown_table(["method", *problems],
                             [[label(m), *[f"{mean_trace(first[(p, m)]):.3f}" if (p, m) in first else "-"
                                           for p in problems]] for m in methods]), ""]
    lines += preset_checks(best, scores)
    lines += findings(problems, methods, means, scores, fixed)
    figures = {"summary": plot_dm(problems, methods, scores), "weights": plot_weights(problems, methods, first),
               "interference": plot_interference(problems, methods, first)}
    return "\n".join(lines) + "\n", figures


def preset_checks(best: dict, scores: dict) -> list[str]:
    """What makes a reduced preset's choices meaningful: learning rates inside the grid tried,
    best epochs that are not always the last."""
    edge = [f"{label(m)} on {p} (lr {c['runs'][0]['spec']['lr']:g})" for (p, m), c in best.items()
            if len(c["lrs"]) > 1 and c["runs"][0]["spec"]["lr"] in (c["lrs"][0], c["lrs"][-1])]
    epochs = [(x["epoch"], len(c["runs"][0]["epochs"])) for k, c in best.items() for x in scores.get(k, [])]
    last = sum(e == n for e, n in epochs)
    return ["## Checks of the preset\n",
            f"- Chosen learning rates at an edge of the grid tried: {', '.join(edge) or 'none'}.",
            f"- Best validation epoch: the last one in {last} of {len(epochs)} runs of the chosen configurations "
            f"(median epoch {np.median([e for e, _ in epochs]) if epochs else float('nan'):g}).", ""]


def paper_table(scores: dict) -> list[str]:
    """Our CL+RR numbers beside paper C's Table 3, method by method."""
    rows = []
    for m, paper in PAPER_CL_RR.items():
        ours = [x["dm_c"] for x in scores.get(("CL+RR", m), [])]
        rows.append([label(m), f"{paper:.3f}", mean_std(ours), len(ours)])
    return ["## Beside paper C's Table 3 (CL+RR, test Δm C %, ↑)\n",
            markdown_table(["method", "paper C (10 runs)", "ours (mean ± std)", "our seeds"], rows),
            "\nPaper C's numbers are MNIST digits at 100 epochs; the absolute values are not expected to "
            "match a reduced run on other items: the claims below compare orderings and signs.\n"]


def fixed_runs(records: list[dict], problem: str, task_sets: dict) -> dict[str, list[dict]]:
    """Fixed-weights runs of ``problem`` by origin (``'<smto>/<rule>'``)."""
    out: dict[str, list[dict]] = {}
    for r in records:
        s = r["spec"]
        if is_fixed(s) and problem_of(s, task_sets) == problem:
            out.setdefault(s["origin"], []).append(r)
    return out


def fixed_scores(records, base_val, base_test, problems, task_sets) -> dict[tuple[str, str], tuple[list, list]]:
    """``{(problem, '<smto>/<rule>'): (weights, test scores)}`` of the fixed-weights runs."""
    out = {}
    for p in problems:
        for origin, runs in sorted(fixed_runs(records, p, task_sets).items()):
            found = test_scores(runs, base_val, base_test)
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
            "\nPaper C's rule (FwLe0.9): the per-epoch mean weights of the SMTO's first run, each epoch "
            "normalised to sum 1, an EMA with beta 0.9, its last value renormalised; retrained as "
            "`sum_t w_t L_t` at the SMTO's configuration on every seed.\n"]


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


def spread_verdict(diff: float, a: list[float], b: list[float]) -> str:
    """Whether a difference of means exceeds the seeds' spread: ``'clearly'`` when it is larger
    than the two samples' standard deviations added, ``'within the spread'`` otherwise."""
    noise = sum(float(np.std(x, ddof=1)) for x in (a, b) if len(x) > 1)
    return "clearly" if abs(diff) > noise else "within the spread"


def findings(problems, methods, means, scores, fixed) -> list[str]:
    """Paper C's three claims, each with our numbers, their spread over seeds and a verdict."""
    out = ["## Paper C's claims beside ours (generated)\n"]
    above = {}
    for p in problems:
        if (p, UNIFORM) not in means:
            continue
        u = [x["dm_c"] for x in scores[(p, UNIFORM)]]
        smtos = [m for m in methods if m != UNIFORM and (p, m) in means]
        above[p] = [m for m in smtos if means[(p, m)] > means[(p, UNIFORM)]]
        clearly = [label(m) for m in above[p]
                   if spread_verdict(means[(p, m)] - means[(p, UNIFORM)], [x["dm_c"] for x in scores[(p, m)]], u)
                   == "clearly"]
        out.append(f"- {p}: {len(above[p])} of {len(smtos)} SMTOs above Unit. Scal. on mean test Δm C "
                   f"({', '.join(label(m) for m in above[p]) or 'none'}); by more than the seeds' spread: "
                   f"{', '.join(clearly) or 'none'}.")
    if "CL+RR" in above:
        n = len([m for m in methods if m != UNIFORM and ("CL+RR", m) in means])
        share, paper_share = len(above["CL+RR"]) / max(n, 1), PAPER_ABOVE_UNIFORM[0] / PAPER_ABOVE_UNIFORM[1]
        verdict = "agrees" if (share > 0.5) == (paper_share > 0.5) else "disagrees"
        out.append(f"- **Claim 1 (CL+RR, dissimilar tasks: SMTOs beat Unit. Scal.)**: paper C {PAPER_ABOVE_UNIFORM[0]} "
                   f"of {PAPER_ABOVE_UNIFORM[1]} SMTOs above Unit. Scal. (CAGrad -2.14, IMTL -2.24, FAMO -2.67, "
                   f"Nash-MTL -3.06 vs -8.95); ours {len(above['CL+RR'])} of {n}: **{verdict}** in direction.")
    similar = [p for p in problems if p in ("CL+CR", "RL+RR") and (p, UNIFORM) in means]
    for p in similar:
        u = [x["dm_c"] for x in scores[(p, UNIFORM)]]
        top = max((m for m in methods if m != UNIFORM and (p, m) in means), key=lambda m: means[(p, m)], default=None)
        if top is None:
            continue
        gap = means[(p, top)] - means[(p, UNIFORM)]
        v = spread_verdict(gap, [x["dm_c"] for x in scores[(p, top)]], u)
        most_above = len(above.get(p, [])) > len([m for m in methods if m != UNIFORM and (p, m) in means]) / 2
        verdict = ("disagrees" if gap > 0 and v == "clearly" else
                   "cannot tell (most SMTOs above on the mean)" if gap > 0 and most_above else "agrees")
        out.append(f"- **Claim 2 ({p}, similar tasks: Unit. Scal. on par with SMTOs)**: paper C shows box plots "
                   f"with Unit. Scal. among the SMTOs; ours: best SMTO {label(top)} {gap:+.2f} points over Unit. "
                   f"Scal. ({v}): **{verdict}**.")
    for (p, origin), (_, runs) in fixed.items():
        smto, rule = origin.split("/")
        ref = [x["dm_c"] for x in scores.get((p, smto), [])]
        got = [x["dm_c"] for x in runs]
        if not ref:
            continue
        diff = float(np.mean(got) - np.mean(ref))
        v = spread_verdict(diff, got, ref)
        verdict = ("agrees" if diff >= 0 else "disagrees" if v == "clearly"
                   else "cannot tell (below the SMTO on the mean, within the spread)")
        out.append(f"- **Claim 3 ({p}: fixed weights from {label(smto)} match it)**: paper C finds fixed weights "
                   f"from CAGrad's run on CL+RR on par with CAGrad; ours: fixed {mean_std(got)} vs "
                   f"{label(smto)} {mean_std(ref)} ({diff:+.2f}, {v}): **{verdict}**.")
    return out + [""]


def plot_dm(problems, methods, scores) -> bytes:
    fig, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 4), squeeze=False)
    for ax, p in zip(axes[0], problems):
        ms = [m for m in methods if scores.get((p, m))]
        for i, m in enumerate(ms):
            vals = [x["dm_c"] for x in scores[(p, m)]]
            ax.bar(i, np.mean(vals), yerr=np.std(vals, ddof=1) if len(vals) > 1 else None, capsize=3,
                   color="tab:gray" if m == UNIFORM else "tab:blue")
            ax.scatter([i] * len(vals), vals, color="k", s=8, zorder=3)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(ms)), [label(m) for m in ms], rotation=40, ha="right", fontsize=8)
        ax.set_title(p)
        ax.set_ylabel("test Δm C (%, higher is better)")
    fig.suptitle("mean over seeds, error bar: sample standard deviation (the table's ±), dots: seeds", fontsize=8)
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
