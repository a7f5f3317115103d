"""Paper B study's report: summary.md tables and summary.png (see :mod:`experiments.paper_b.trajectories`).

Reads the run records of one problem of :mod:`experiments.paper_b.trajectories` (each with
its ``trajectory``) and compares every multi-task run with the single-task runs of the same
seed through :mod:`experiments.paper_b.analysis`. Every mean gap carries a bootstrap
interval over seeds, every correlation its Pearson r and Spearman ρ with two-level bootstrap
intervals over seeds and points (:mod:`experiments.paper_b.uncertainty`) and the number of
points n.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.paper_b import analysis as pb  # noqa: E402
from experiments.paper_b.uncertainty import bootstrap_ci, open_threshold  # noqa: E402
from experiments.report import markdown_table, png_bytes  # noqa: E402

METHOD_LABELS = {"ew": "EW", "mgda": "MGDA", "pcgrad": "PCGrad", "upgrad": "UPGrad", "nash_mtl": "Nash-MTL"}


def pairs_of(records: list[dict]) -> dict[tuple[str, int], list[tuple[int, dict, dict]]]:
    """``{(method, task): [(seed, stl, mtl trajectories), one per seed]}``."""
    stl = {(r["spec"]["seed"], r["spec"]["stl_task"]): r["trajectory"] for r in records
           if r["spec"]["stl_task"] is not None}
    out: dict = {}
    for r in records:
        s = r["spec"]
        if s["stl_task"] is None:
            for t in range(len(r["tasks"])):
                if (s["seed"], t) in stl:
                    out.setdefault((s["method"], t), []).append((s["seed"], stl[(s["seed"], t)], r["trajectory"]))
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def interval(lo: float, hi: float, digits: int = 2) -> str:
    return "" if not (np.isfinite(lo) and np.isfinite(hi)) else f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def by_seed(points: list[dict], x: str, y: str) -> list[np.ndarray]:
    """The ``(x, y)`` pairs of ``points`` grouped by seed (the bootstrap's first level)."""
    seeds = sorted({p["seed"] for p in points})
    val = lambda v: np.nan if v is None else v
    return [np.array([[val(p[x]), val(p[y])] for p in points if p["seed"] == s], float).reshape(-1, 2)
            for s in seeds]


def relation(points: list[dict], x: str, y: str) -> dict:
    """Pearson r and Spearman ρ of ``x`` and ``y`` over ``points``, each with its interval, and n."""
    groups = by_seed(points, x, y)
    both = np.concatenate(groups) if groups else np.zeros((0, 2))
    r, rho, n = pb.correlation(both[:, 0], both[:, 1])
    return {"r": r, "rho": rho, "n": n,
            "r_ci": bootstrap_ci(groups, lambda a: pb.correlation(a[:, 0], a[:, 1])[0]),
            "rho_ci": bootstrap_ci(groups, lambda a: pb.correlation(a[:, 0], a[:, 1])[1])}


def relation_cells(rel: dict) -> list[str]:
    return [fmt(rel["r"], 2) + interval(*rel["r_ci"]), fmt(rel["rho"], 2) + interval(*rel["rho_ci"]), rel["n"]]


def gap_tables(pairs: dict, methods: list[str], tasks: list[str], metrics: list[str],
               n_levels: int) -> tuple[str, dict]:
    """Per task, the gap (validation loss and the task's metric, MTL minus STL, mean over seeds
    with its bootstrap interval) at each shared training-loss level, with the MTL run's
    progress there, the threshold from the STL seeds' spread and where the gap opens."""
    text, curves = [], {}
    for t, task in enumerate(tasks):
        here = [m for m in methods if (m, t) in pairs]
        levels = pb.shared_levels([(s, x) for m in here for _, s, x in pairs[(m, t)]], t, n_levels)
        stl_runs = {seed: s for m in here for seed, s, _ in pairs[(m, t)]}
        stl_val = np.array([[pb.at_level(s, t, lv, "val_loss")[1] for lv in levels] for s in stl_runs.values()])
        threshold = open_threshold(stl_val)
        rows = [[f"{lv:.3f}"] for lv in levels]
        opens = ["opens at"]
        for m in here:
            loss = np.array([[pb.gap_at(s, x, t, lv) for lv in levels] for _, s, x in pairs[(m, t)]], float)
            metric = np.array([[pb.gap_at(s, x, t, lv, "val_metric") for lv in levels]
                               for _, s, x in pairs[(m, t)]], float)
            progress = np.array([[pb.at_level(x, t, lv, "val_loss")[0] / x["steps"][-1] for lv in levels]
                                 for _, _, x in pairs[(m, t)]], float)
            cis = [bootstrap_ci([[g] for g in loss[:, i]], np.mean) for i in range(len(levels))]
            mean_loss, mean_metric, mean_progress = loss.mean(0), metric.mean(0), 100 * progress.mean(0)
            curves[(m, t)] = (levels, mean_loss, np.array(cis).reshape(-1, 2))
            for row, gl, ci, gm, pr in zip(rows, mean_loss, cis, mean_metric, mean_progress):
                row.append(f"{fmt(gl)}{interval(*ci, 3)} / {fmt(gm)} ({pr:.0f}%)")
            i = pb.opens_at(mean_loss, threshold)
            opens.append("cannot tell (one seed)" if not np.isfinite(threshold) else
                         "not within the grid" if i is None else f"loss {levels[i]:.3f} ({mean_progress[i]:.0f}%)")
        header = ["train loss", *[METHOD_LABELS.get(m, m) for m in here]]
        text.append(f"### Task {task}\n\nThreshold (twice the standard error of a mean gap from the STL "
                    f"runs' seed-to-seed spread of validation loss, {len(stl_runs)} seeds): "
                    f"{fmt(threshold)} (the task's loss units).\n\n" + markdown_table(header, rows + [opens]))
    note = ("Each cell: MTL minus STL validation loss [95% bootstrap interval over seeds] / the task's "
            f"validation metric ({', '.join(f'{t}: {m}' for t, m in zip(tasks, metrics))}) at the step where "
            "each run first reaches the training-loss level (interpolated), mean over seeds, and in "
            "parentheses the MTL run's training progress there. Positive loss gap: multi-task training "
            "generalizes worse at that training loss. 'opens at': the first level from which |mean loss "
            "gap| >= the task's threshold at every later level.")
    return "\n\n".join(text) + "\n\n" + note, curves


def explanation_table(pairs: dict, tasks: list[str]) -> tuple[str, list[dict]]:
    points = [dict(p, method=m, task=t, seed=seed) for (m, t), ps in pairs.items() for seed, s, x in ps
              for p in pb.explanation_points(s, x, t)]
    rows = []
    for q, label in pb.QUANTITIES.items():
        rel = relation(points, q, "gap")
        values = np.array([np.nan if p[q] is None else p[q] for p in points], float)
        partial = pb.partial_correlation(values, [p["gap"] for p in points], [p["progress"] for p in points])[0]
        rows.append([label, *relation_cells(rel), fmt(partial, 2),
                     f"{int(np.sum(~np.isfinite(values)))} of {len(values)}"])
    header = ["quantity (MTL − STL)", "Pearson r [95%]", "Spearman ρ [95%]", "n",
              "partial r (given progress)", "not finite (left out)"]
    return markdown_table(header, rows), points


def conflict_tables(pairs: dict, methods: list[str], tasks: list[str]) -> tuple[str, list[dict]]:
    """Per method and task, the two conflict measures' means; then each measure's relation with
    the optimization deficit and with the gap, over all methods and per method."""
    points, rows = [], []
    for m in methods:
        for t, task in enumerate(tasks):
            if (m, t) not in pairs:
                continue
            points += [dict(p, method=m, task=t, seed=seed) for seed, s, x in pairs[(m, t)]
                       for p in pb.conflict_points(s, x, t)]
            update = np.concatenate([pb.task_conflicts(x, t)[1] for _, _, x in pairs[(m, t)]])
            inter = np.concatenate([pb.task_conflicts(x, t)[2] for _, _, x in pairs[(m, t)]])
            stl = np.concatenate([np.asarray(s["conflict"]["update"], float)[:, 0] for _, s, _ in pairs[(m, t)]])
            rows.append([METHOD_LABELS.get(m, m), task, f"{update.mean():.3f}", f"{stl.mean():.3f}",
                         f"{inter.mean():.3f}", f"{100 * np.mean(inter < 0):.0f}%", f"{100 * np.mean(update < 0):.0f}%"])
    means = markdown_table(["method", "task", "cos(g_t, update) MTL", "cos(g_t, update) STL", "cos(g_t, g_s)",
                            "steps with cos(g_t, g_s) < 0", "steps with cos(g_t, update) < 0"], rows)
    rel_rows = []
    for scope in ["all", *methods]:
        mine = [p for p in points if scope == "all" or p["method"] == scope]
        for c, label in pb.CONFLICTS.items():
            for y, what in (("deficit", "optimization deficit"), ("gap", "generalization gap")):
                rel_rows.append([METHOD_LABELS.get(scope, scope), label, what, *relation_cells(relation(mine, c, y))])
    rels = markdown_table(["methods", "conflict measure", "against", "Pearson r [95%]", "Spearman ρ [95%]", "n"],
                          rel_rows)
    return means + "\n\n" + rels, points


def estimate_noise(records: list[dict], points: list[dict], tasks: list[str]) -> str:
    """Each estimate's own noise, once: at the last checkpoint of the first seed's runs the
    quantities on a second probe batch against the first (median relative difference), beside the median
    relative MTL-minus-STL difference the correlations read; how often B_simple is finite;
    how many sharpness estimates passed the Lanczos convergence check, and at which step."""
    rows = []
    for q, label in pb.QUANTITIES.items():
        first, second = [], []
        for r in records:
            ck = r["trajectory"]["checkpoints"]
            trained = range(len(tasks)) if r["spec"]["stl_task"] is None else [r["spec"]["stl_task"]]
            if ck.get("second"):
                first += [ck[q][-1][t] for t in trained]
                second += [ck["second"][q][t] for t in trained]
        a, b = np.asarray(first, float), np.asarray(second, float)
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
        rel = np.abs(a - b) / np.maximum((np.abs(a) + np.abs(b)) / 2, 1e-30)
        diffs = np.asarray([p[q] for p in points if p[q] is not None and np.isfinite(p[q])], float)
        own = [np.asarray(r["trajectory"]["checkpoints"][q], float) for r in records]
        level = np.nanmedian(np.abs(np.concatenate([o.ravel() for o in own]))) if own else np.nan
        rows.append([label, f"{np.median(rel):.1%}" if len(rel) else "-", len(rel),
                     f"{np.median(np.abs(diffs)) / level:.1%}" if len(diffs) and level > 0 else "-"])
    noise = np.concatenate([np.asarray(r["trajectory"]["checkpoints"]["noise_scale"], float).ravel() for r in records])
    iters = [k for r in records for row in r["trajectory"]["checkpoints"]["lanczos_iters"] for k in row]
    done = [k for k in iters if k is not None]
    return (markdown_table(["quantity", "two probe batches: median relative difference", "estimates",
                            "median |MTL − STL| / median value"], rows) +
            f"\n\nB_simple finite on {np.mean(np.isfinite(noise)):.0%} of {len(noise)} estimates (all runs, "
            f"checkpoints and tasks). Sharpness: {len(done)} of {len(iters)} Lanczos estimates passed the "
            f"convergence check (relative change <= {pb.LANCZOS_RTOL:g} over {pb.LANCZOS_WINDOW} steps, from "
            f"step {pb.MIN_LANCZOS})" + (f", at step {int(np.median(done))} (median, max {max(done)})" if done else "")
            + "; every estimate is the last step's.")


def summarize(records: list[dict], cfg: dict) -> tuple[str, dict | None]:
    records = [r for r in records if r is not None and r["trajectory"]["steps"]]
    pairs = pairs_of(records)
    if not pairs:
        return "(no complete STL + MTL pair yet)\n", None
    tasks = records[0]["tasks"]
    metrics = records[0]["trajectory"]["metrics"]
    runs = [[r["label"], r["trajectory"]["steps"][-1],
             *[f"{r['trajectory'][k][-1][t]:.3f}" for k in ("train_loss", "val_loss", "val_metric")
               for t in range(len(tasks))]] for r in records]
    runs_header = ["run", "steps", *[f"{k} {t}" for k in ("train loss", "val loss", "val metric")
                                     for t in tasks]]
    gaps, curves = gap_tables(pairs, cfg["methods"], tasks, metrics, cfg["levels"])
    expl, expl_points = explanation_table(pairs, tasks)
    conflict, conflict_points = conflict_tables(pairs, cfg["methods"], tasks)
    text = ("### Runs (last logged step)\n\n" + markdown_table(runs_header, runs) +
            "\n\nSTL runs train one task; their other tasks' columns are those of an untrained head.\n\n"
            "### Generalization gap at comparable training loss\n\n" + gaps +
            "\n\n### Candidate explanations: correlation with the gap\n\n" + expl +
            "\n\nAcross methods, seeds, tasks and the MTL run's analysis checkpoints (the first "
            "excluded): at the MTL training loss of the checkpoint, the validation-loss gap against each "
            "quantity's MTL-minus-STL difference (quantities interpolated between checkpoints at each "
            "run's crossing step). 'partial r (given progress)': the Pearson r once the linear effect of the "
            "checkpoint's training progress is removed from both. 'not finite': points where a run's noise scale "
            "is infinite (the probe batch does not resolve the mean gradient), counted and left out.\n\n"
            "### Estimates' own noise\n\n" + estimate_noise(records, expl_points, tasks) +
            "\n\n### Conflict vs optimization and generalization\n\n" + conflict +
            "\n\nPer logged interval of an MTL run: cos(g_t, update) = mean cosine of task t's gradient "
            "(the step's batch, shared parameters) with the applied update; cos(g_t, g_s) = mean cosine of "
            "task t's gradient with the other tasks' gradients (conflict between tasks, < 0 a conflict); "
            "deficit = the STL run's training-loss decrease over the same steps minus the MTL run's "
            "(positive: the task is optimised less under MTL); gap = validation-loss gap at the MTL training "
            "loss at the interval's end. A negative r with the deficit means more conflict goes with a "
            "larger deficit. 'STL': the same cosine in the task's STL run (Adam's preconditioning keeps "
            "it below 1).\n")
    return text, {"curves": curves, "explanations": expl_points, "conflicts": conflict_points, "tasks": tasks}


def plot(figures: list[tuple[str, dict]], methods: list[str]) -> bytes:
    """Per problem (a row): the gap curves of two tasks with their intervals, and the
    conflict between tasks against the optimization deficit and against the gap."""
    fig, axes = plt.subplots(len(figures), 4, figsize=(19, 4.3 * len(figures)), squeeze=False)
    colors = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    for row, (name, data) in zip(axes, figures):
        for t, task in enumerate(data["tasks"][:2]):
            ax = row[t]
            for m in methods:
                if (m, t) in data["curves"]:
                    levels, gap, ci = data["curves"][(m, t)]
                    ax.plot(levels, gap, "o-", color=colors[m], label=METHOD_LABELS.get(m, m), ms=3)
                    ax.fill_between(levels, ci[:, 0], ci[:, 1], color=colors[m], alpha=0.15)
            ax.axhline(0, color="k", lw=0.8)
            ax.invert_xaxis()
            ax.set_xlabel("training loss level (training progresses →)")
            ax.set_ylabel("val loss gap (MTL − STL)")
            ax.set_title(f"{name}: gap at comparable training loss, {task}", fontsize=9)
            ax.legend(fontsize=8)
        for ax, y, ylabel in ((row[2], "deficit", "optimization deficit"), (row[3], "gap", "val loss gap")):
            pts = [p for p in data["conflicts"] if p[y] is not None]
            for m in methods:
                sel = [p for p in pts if p["method"] == m]
                ax.scatter([p["inter"] for p in sel], [p[y] for p in sel], s=10, color=colors[m], alpha=0.6,
                           label=METHOD_LABELS.get(m, m))
            r, rho, n = pb.correlation([p["inter"] for p in pts], [p[y] for p in pts])
            ax.set_title(f"{name}: {ylabel} vs cos(g_t, g_s): r = {fmt(r, 2)}, ρ = {fmt(rho, 2)} (n = {n})",
                         fontsize=9)
            ax.set_xlabel("cos(g_t, g_s), interval mean")
            ax.set_ylabel(ylabel)
    fig.tight_layout()
    return png_bytes(fig)
