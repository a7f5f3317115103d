"""Paper B study's report: summary.md tables and summary.png (see :mod:`experiments.paper_b.trajectories`).

Reads the run records of :mod:`experiments.paper_b.trajectories` (each with its
``trajectory``) and compares every multi-task run with the single-task runs of
the same seed through :mod:`experiments.paper_b.analysis`.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.paper_b import analysis as pb  # noqa: E402
from experiments.report import markdown_table, png_bytes  # noqa: E402

METHOD_LABELS = {"ew": "EW", "mgda": "MGDA", "pcgrad": "PCGrad", "upgrad": "UPGrad", "nash_mtl": "Nash-MTL"}


def pairs_of(records: list[dict]) -> dict[tuple[str, int], list[tuple[dict, dict]]]:
    """``{(method, task): [(stl, mtl) trajectories, one pair per seed]}``."""
    stl = {(r["spec"]["seed"], r["spec"]["stl_task"]): r["trajectory"] for r in records
           if r["spec"]["stl_task"] is not None}
    out: dict = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is None:
            for t in range(len(r["tasks"])):
                if (s["seed"], t) in stl:
                    out.setdefault((s["method"], t), []).append((stl[(s["seed"], t)], r["trajectory"]))
    return out


def fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def gap_tables(pairs: dict, methods: list[str], tasks: list[str], n_levels: int) -> tuple[str, dict]:
    """Per task, the gap (validation loss and accuracy, MTL minus STL, mean over seeds) at
    each shared training-loss level, with the MTL run's progress there, and where it opens."""
    text, curves = [], {}
    for t, task in enumerate(tasks):
        here = [m for m in methods if (m, t) in pairs]
        levels = pb.shared_levels([p for m in here for p in pairs[(m, t)]], t, n_levels)
        rows = [[f"{lv:.3f}"] for lv in levels]
        opens = ["opens at"]
        for m in here:
            loss = np.array([[pb.gap_at(s, x, t, lv) for lv in levels] for s, x in pairs[(m, t)]], float)
            acc = np.array([[pb.gap_at(s, x, t, lv, "val_acc") for lv in levels] for s, x in pairs[(m, t)]], float)
            progress = np.array([[pb.at_level(x, t, lv, "val_loss")[0] / x["steps"][-1] for lv in levels]
                                 for _, x in pairs[(m, t)]], float)
            loss, acc, progress = loss.mean(0), 100 * acc.mean(0), 100 * progress.mean(0)
            curves[(m, t)] = (levels, loss)
            for row, gl, ga, pr in zip(rows, loss, acc, progress):
                row.append(f"{fmt(gl)} / {fmt(ga, 1)} ({pr:.0f}%)")
            i = pb.opens_at(loss)
            opens.append("not within the grid" if i is None else f"loss {levels[i]:.3f} ({progress[i]:.0f}%)")
        header = ["train loss", *[METHOD_LABELS.get(m, m) for m in here]]
        text.append(f"### Task {task}\n\n" + markdown_table(header, rows + [opens]))
    note = ("Each cell: MTL minus STL validation loss / accuracy (percentage points) at the step where "
            "each run first reaches the training-loss level (interpolated), mean over seeds, and in "
            "parentheses the MTL run's training progress there. Positive loss gap: multi-task training "
            f"generalizes worse at that training loss. 'opens at': the first level from which "
            f"|loss gap| >= {pb.GAP_THRESHOLD} at every later level.")
    return "\n\n".join(text) + "\n\n" + note, curves


def explanation_table(pairs: dict, tasks: list[str]) -> tuple[str, list[dict]]:
    points = [dict(p, method=m, task=t) for (m, t), ps in pairs.items() for s, x in ps
              for p in pb.explanation_points(s, x, t)]
    rows = []
    for q, label in pb.QUANTITIES.items():
        r, rho, n = pb.correlation([p[q] for p in points], [p["gap"] for p in points])
        partial = pb.partial_correlation([p[q] for p in points], [p["gap"] for p in points],
                                         [p["progress"] for p in points])[0]
        per_task = [pb.correlation([p[q] for p in points if p["task"] == t],
                                   [p["gap"] for p in points if p["task"] == t])[0] for t in range(len(tasks))]
        rows.append([label, fmt(r, 2), fmt(rho, 2), fmt(partial, 2), n, *[fmt(v, 2) for v in per_task]])
    header = ["quantity (MTL − STL)", "Pearson r", "Spearman ρ", "partial r (given progress)", "points",
              *[f"r ({t})" for t in tasks]]
    return markdown_table(header, rows), points


def conflict_table(pairs: dict, methods: list[str], tasks: list[str]) -> tuple[str, list[dict]]:
    points, rows = [], []
    for m in methods:
        for t, task in enumerate(tasks):
            if (m, t) not in pairs:
                continue
            mine = [dict(p, method=m, task=t) for s, x in pairs[(m, t)] for p in pb.conflict_points(s, x, t)]
            points += mine
            cos = np.concatenate([np.asarray(x["cosines"]["values"])[:, t] for _, x in pairs[(m, t)]])
            stl_cos = np.concatenate([np.asarray(s["cosines"]["values"])[:, t] for s, _ in pairs[(m, t)]])
            rows.append([METHOD_LABELS.get(m, m), task, f"{cos.mean():.3f}", f"{stl_cos.mean():.3f}",
                         f"{100 * np.mean(cos < 0):.0f}%", *correlation_cells(mine)])
    rows.append(["all", "all", "", "", "", *correlation_cells(points)])
    header = ["method", "task", "mean cos (MTL)", "mean cos (STL)", "steps with cos < 0",
              "r(cos, deficit)", "r(cos, gap)", "intervals"]
    return markdown_table(header, rows), points


def correlation_cells(points: list[dict]) -> list:
    r_def, _, n = pb.correlation([p["cosine"] for p in points], [p["deficit"] for p in points])
    r_gap = pb.correlation([p["cosine"] for p in points],
                           [np.nan if p["gap"] is None else p["gap"] for p in points])[0]
    return [fmt(r_def, 2), fmt(r_gap, 2), n]


def summarize(records: list[dict], cfg: dict) -> tuple[str, dict | None]:
    pairs = pairs_of([r for r in records if r is not None and r["trajectory"]["steps"]])
    if not pairs:
        return "(no complete STL + MTL pair yet)\n", None
    tasks = records[0]["tasks"]
    runs = [[r["label"], r["trajectory"]["steps"][-1],
             *[f"{r['trajectory'][k][-1][t]:.3f}" for k in ("train_loss", "val_loss") for t in range(len(tasks))],
             *[f"{100 * r['trajectory']['val_acc'][-1][t]:.1f}" for t in range(len(tasks))]]
            for r in records if r is not None and r["trajectory"]["steps"]]
    runs_header = ["run", "steps", *[f"{k} {t}" for k in ("train loss", "val loss", "val acc %") for t in tasks]]
    gaps, curves = gap_tables(pairs, cfg["methods"], tasks, cfg["levels"])
    expl, expl_points = explanation_table(pairs, tasks)
    conflict, conflict_points = conflict_table(pairs, cfg["methods"], tasks)
    text = ("## Runs (last logged step)\n\n" + markdown_table(runs_header, runs) +
            "\n\nSTL runs train one task; their other task's columns are those of an untrained head.\n\n"
            "## Generalization gap at comparable training loss\n\n" + gaps +
            "\n\n## Candidate explanations: correlation with the gap\n\n" + expl +
            "\n\nAcross methods, seeds, tasks and the MTL run's analysis checkpoints (the first "
            "excluded): at the MTL training loss of the checkpoint, the validation-loss gap against each "
            "quantity's MTL-minus-STL difference (quantities interpolated between checkpoints at each "
            "run's crossing step). 'partial r (given progress)': the Pearson r once the linear effect of the "
            "checkpoint's training progress is removed from both (both grow along training). Non-finite noise scales (batch too small to resolve the mean "
            "gradient) are left out.\n\n"
            "## Conflict vs optimization\n\n" + conflict +
            "\n\nPer logged interval of an MTL run: cos = mean cosine of the task's gradient (step "
            "batch, shared encoder) with the applied update; deficit = the STL run's training-loss "
            "decrease over the same steps minus the MTL run's (positive: the task is optimised less "
            "under MTL); gap = validation-loss gap at the MTL training loss at the interval's end. "
            "A negative r(cos, deficit) means more conflict goes with a larger deficit. 'mean cos "
            "(STL)': the same cosine in the task's STL run (Adam's preconditioning keeps it below 1).\n")
    return text, {"curves": curves, "explanations": expl_points, "conflicts": conflict_points, "tasks": tasks}


def plot(data: dict, methods: list[str]) -> bytes:
    fig, axes = plt.subplots(2, 4, figsize=(19, 8.5))
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    for t, task in enumerate(data["tasks"]):
        ax = axes[0, t]
        for m in methods:
            if (m, t) in data["curves"]:
                levels, gap = data["curves"][(m, t)]
                ax.plot(levels, gap, "o-", color=colors[m], label=METHOD_LABELS.get(m, m), ms=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.invert_xaxis()
        ax.set_xlabel("training loss level (training progresses →)")
        ax.set_ylabel("val loss gap (MTL − STL)")
        ax.set_title(f"Gap at comparable training loss: {task}")
        ax.legend(fontsize=8)

    def scatter(ax, points, x, y, xlabel, ylabel):
        pts = [p for p in points if p[x] is not None and p[y] is not None]
        for m in methods:
            sel = [p for p in pts if p["method"] == m]
            ax.scatter([p[x] for p in sel], [p[y] for p in sel], s=12, color=colors[m],
                       marker="o", alpha=0.7, label=METHOD_LABELS.get(m, m))
        r, _, n = pb.correlation([p[x] for p in pts], [p[y] for p in pts])
        ax.set_title(f"{ylabel} vs {xlabel}: r = {fmt(r, 2)} (n = {n})", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    scatter(axes[0, 2], data["conflicts"], "cosine", "deficit", "cos(g_t, update)", "optimization deficit")
    scatter(axes[0, 3], data["conflicts"], "cosine", "gap", "cos(g_t, update)", "val loss gap")
    for ax, (q, label) in zip(axes[1], pb.QUANTITIES.items()):
        scatter(ax, data["explanations"], q, "gap", f"Δ {label}", "val loss gap")
    axes[1, 0].legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
