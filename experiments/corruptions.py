"""Study A4 (Paper A, Elich et al.): does multi-task training transfer better under corruptions?

    python -m experiments.corruptions --preset quick [--from-study results/optimizer_study/quick]

1. Trains the clean models: one single-task (STL) model per task and one
   multi-task (MTL, EW by default) model, each keeping its best epoch on
   validation (STL: its task's accuracy; MTL: delta-m against the STL runs).
   With ``--from-study``, the optimizer and learning rate of the best STL run
   per task and of the best EW run of study A1.
2. Freezes each model's backbone (the shared encoder) and fine-tunes its
   head(s) on corrupted training data: every epoch each image gets a
   corruption and a severity drawn at random (:func:`jaxmtl.data.corrupt_random`).
3. Tests each fine-tuned model on clean data and under every corruption and
   severity (14 corruptions x 5 severities, :mod:`jaxmtl.data.corruptions`).
4. Scores each task with Paper A's ``delta_t`` (:func:`jaxmtl.analysis.corruption_delta`):
   the mean over corruptions and severities of the relative accuracy kept by
   the MTL model minus that kept by the STL model, sign-flipped; ``< 0`` means
   the MTL model copes better.

Writes ``results.jsonl`` (one line per training and per fine-tune+test,
resumable; model parameters under ``models/``), ``summary.md`` and
``summary.png`` (heat map) into ``--out``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import serialization  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxmtl  # noqa: E402
from experiments.common import (RunSpec, epoch_score, markdown_table, open_store, png_bytes,  # noqa: E402
                                stl_baselines, steps_per_run, study_parser, train_run,
                                write_summary)
from experiments.optimizer_study import best_ew, best_stl  # noqa: E402
from experiments.optimizers import make_optimizer  # noqa: E402
from jaxmtl.analysis import corruption_delta  # noqa: E402
from jaxmtl.data import CORRUPTIONS, SEVERITIES, Split, batches, corrupt, corrupt_random, make_multi_fashion  # noqa: E402
from jaxmtl.models import MultiLeNet, shared_mask  # noqa: E402
from jaxmtl.training import atomic_write, evaluate, make_eval_step, make_train_step  # noqa: E402

PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=1, ft_epochs=1, batch_size=32),
    "quick": dict(data=dict(n_train=4096, n_val=1024, n_test=1024), epochs=6, ft_epochs=2, batch_size=64),
    "paper": dict(data=dict(), epochs=30, ft_epochs=10, batch_size=256),
}


def clean_specs(cfg: dict, args, num_tasks: int) -> dict[str, RunSpec]:
    common = dict(seed=args.seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=dict(cfg["data"], seed=0))
    stl_cfg, mtl_cfg = {t: (args.optimizer, args.lr) for t in range(num_tasks)}, (args.optimizer, args.lr)
    if args.from_study:
        study = Path(args.from_study)
        stl_cfg, mtl_cfg = {t: best_stl(study, t) for t in range(num_tasks)}, best_ew(study)
    specs = {f"stl{t}": RunSpec(method="stl", stl_task=t, optimizer=o, lr=lr, **common)
             for t, (o, lr) in stl_cfg.items()}
    specs["mtl"] = RunSpec(method=args.method, optimizer=mtl_cfg[0], lr=mtl_cfg[1], **common)
    return specs


def model_path(out: Path, spec: RunSpec) -> Path:
    return out / "models" / f"{spec.key.replace('/', '_')}.msgpack"


def train_clean(spec: RunSpec, data, base_val, model_path: Path, bar) -> dict:
    """Trains ``spec`` and saves the parameters of its epoch chosen on validation."""
    keep = {}

    def on_epoch(record, params):
        score = epoch_score(record, spec.stl_task, list(data.tasks), base_val)
        if not keep or score < keep["score"]:
            keep.update(score=score, epoch=record["epoch"], params=params)

    record = train_run(spec, data, progress=bar, on_epoch=on_epoch)
    if not keep:
        raise FloatingPointError(f"{spec.label} diverged in its first epoch: choose another learning rate")
    atomic_write(model_path, serialization.to_bytes(keep["params"]))
    record["selected_epoch"] = keep["epoch"]
    return record


def fine_tune_and_test(spec: RunSpec, params, data, test_sets: dict, ft_epochs: int, bar) -> dict:
    """Fine-tunes the heads on randomly corrupted training data and tests everywhere."""
    num_tasks = len(data.tasks)
    model = MultiLeNet(num_tasks=num_tasks, num_classes=data.num_classes)
    tasks = None if spec.stl_task is None else (spec.stl_task,)
    t = num_tasks if tasks is None else 1
    tx = optax.chain(make_optimizer(spec.optimizer, spec.lr, jaxmtl.linear(num_tasks=t), num_tasks=t,
                                           shared=shared_mask),
                     optax.masked(optax.set_to_zero(), shared_mask))
    step = make_train_step(model.apply, tx, shared=shared_mask, tasks=tasks)
    opt_state = tx.init(params)
    rng, key = np.random.default_rng(spec.seed), jax.random.PRNGKey(spec.seed)
    for epoch in range(ft_epochs):
        images, _, _ = corrupt_random(data.train.images, seed=1000 * spec.seed + epoch)
        for batch in batches(Split(images, data.train.labels), spec.batch_size, rng):
            key, sub = jax.random.split(key)
            params, opt_state, _ = step(params, opt_state, batch, sub)
            bar.update(1)
    eval_step = make_eval_step(model.apply)
    own = list(range(num_tasks)) if tasks is None else list(tasks)

    def acc(split):  # one evaluation per test set, whatever the number of tasks scored
        accuracy = evaluate(eval_step, params, batches(split, 512, drop_last=False))["accuracy"]
        return [accuracy[k] for k in own]

    return {"tasks_scored": own, "clean": acc(data.test),
            "corrupted": {name: [acc(test_sets[(name, s)]) for s in SEVERITIES] for name in CORRUPTIONS}}


def scores(results: dict[str, dict], tasks: list[str]) -> dict:
    """Per task: ``delta_t`` overall, per corruption, per severity; accuracies kept."""
    mtl = results["mtl"]
    out = {}
    for t, task in enumerate(tasks):
        stl = results[f"stl{t}"]
        m = np.array([[s[mtl["tasks_scored"].index(t)] for s in mtl["corrupted"][c]] for c in CORRUPTIONS])
        s_ = np.array([[s[0] for s in stl["corrupted"][c]] for c in CORRUPTIONS])
        mc, sc = mtl["clean"][mtl["tasks_scored"].index(t)], stl["clean"][0]
        out[task] = {"delta": corruption_delta(m, s_, mc, sc, True),
                     "per_corruption": [corruption_delta(m[i], s_[i], mc, sc, True) for i in range(len(m))],
                     "per_severity": [corruption_delta(m[:, j], s_[:, j], mc, sc, True) for j in range(m.shape[1])],
                     "mtl_kept": (m / mc).mean(axis=1).tolist(), "stl_kept": (s_ / sc).mean(axis=1).tolist(),
                     "mtl_clean": mc, "stl_clean": sc}
    return out


def summarize(sc: dict) -> str:
    tasks = list(sc)
    header = ["corruption"] + [f"{t}: {k}" for t in tasks for k in ("STL kept (%)", "MTL kept (%)", "δ (%)")]
    rows = []
    for i, name in enumerate(CORRUPTIONS):
        rows.append([name] + [v for t in tasks for v in (f"{100 * sc[t]['stl_kept'][i]:.1f}",
                                                         f"{100 * sc[t]['mtl_kept'][i]:.1f}",
                                                         f"{100 * sc[t]['per_corruption'][i]:+.2f}")])
    rows.append(["**all (δ_t)**"] + [v for t in tasks for v in ("", "", f"**{100 * sc[t]['delta']:+.2f}**")])
    clean = markdown_table(["task", "STL clean acc (%)", "MTL clean acc (%)", "δ_t (%)",
                            *[f"δ severity {s} (%)" for s in SEVERITIES]],
                           [[t, f"{100 * sc[t]['stl_clean']:.1f}", f"{100 * sc[t]['mtl_clean']:.1f}",
                             f"{100 * sc[t]['delta']:+.2f}", *[f"{100 * d:+.2f}" for d in sc[t]["per_severity"]]]
                            for t in tasks])
    return ("## δ_t per task\n\n" + clean + "\n\nδ_t = mean over corruptions and severities of −(MTL acc / "
            "MTL clean acc − STL acc / STL clean acc), in %; < 0: the MTL model keeps more of its clean "
            "accuracy. Clean accuracies are the fine-tuned models' on clean test data.\n\n"
            "## Per corruption (mean over severities)\n\n" + markdown_table(header, rows) + "\n")


def plot(sc: dict) -> bytes:
    tasks = list(sc)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    grid = 100 * np.array([sc[t]["per_corruption"] for t in tasks])
    lim = max(np.abs(grid).max(), 1e-6)
    im = ax1.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax1.set_xticks(range(len(CORRUPTIONS)), list(CORRUPTIONS), rotation=40, ha="right", fontsize=8)
    ax1.set_yticks(range(len(tasks)), tasks)
    for (i, j), v in np.ndenumerate(grid):
        ax1.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax1, label="δ (%), < 0: MTL copes better")
    ax1.set_title("δ per task and corruption (mean over severities)")
    for t in tasks:
        ax2.plot(SEVERITIES, 100 * np.array(sc[t]["per_severity"]), marker="o", label=t)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("severity")
    ax2.set_ylabel("δ (%)")
    ax2.set_title("δ per severity")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "corruptions", PRESETS)
    parser.add_argument("--from-study", default=None, help="an optimizer_study output directory: its best configurations")
    parser.add_argument("--method", default="ew", help="the MTL model's method (default ew)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = PRESETS[args.preset]
    out = Path(args.out or f"results/corruptions/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data = make_multi_fashion(args.data_dir, seed=0, **cfg["data"])
    specs = clean_specs(cfg, args, len(data.tasks))
    ft_steps = cfg["ft_epochs"] * (len(data.train) // cfg["batch_size"])
    todo_clean = [n for n, s in specs.items() if s.key not in store]
    todo_ft = [n for n, s in specs.items() if f"{s.key}-ft{cfg['ft_epochs']}" not in store]
    print(f"clean models to train: {todo_clean or 'none'}; to fine-tune and test: {todo_ft or 'none'}")
    total = sum(steps_per_run(specs[n], data) for n in todo_clean) + ft_steps * len(todo_ft)
    with tqdm(total=total, unit="step", dynamic_ncols=True) as bar:
        for name in sorted(todo_clean, key=lambda n: n == "mtl"):  # STL first: MTL selects on delta-m
            bar.set_description(f"clean {name}")
            base_val = stl_baselines([store.get(specs[n].key) for n in specs if n != "mtl"])[0][args.seed] \
                if name == "mtl" else None
            store.add(train_clean(specs[name], data, base_val, model_path(out, specs[name]), bar))
        if todo_ft:
            bar.set_description("corrupting the test set")
            test_sets = {(c, s): Split(corrupt(data.test.images, c, s, seed=args.seed), data.test.labels)
                         for c in CORRUPTIONS for s in SEVERITIES}
            init = MultiLeNet(num_tasks=len(data.tasks), num_classes=data.num_classes).init(
                jax.random.PRNGKey(0), jnp.zeros((1, *data.train.images.shape[1:])))["params"]
        for name in todo_ft:
            bar.set_description(f"fine-tune {name}")
            spec = specs[name]
            params = serialization.from_bytes(init, model_path(out, spec).read_bytes())
            result = fine_tune_and_test(spec, params, data, test_sets, cfg["ft_epochs"], bar)
            store.add(dict(result, key=f"{spec.key}-ft{cfg['ft_epochs']}", model=name, label=spec.label))
    results = {n: store.get(f"{s.key}-ft{cfg['ft_epochs']}") for n, s in specs.items()}
    sc = scores(results, list(data.tasks))
    text = (f"# Study A4: transfer under corruptions on Multi-Fashion (preset `{args.preset}`)\n\n"
            f"Clean models: {', '.join(f'{n} = {s.label}' for n, s in specs.items())}; {cfg['epochs']} epochs, "
            f"batch {cfg['batch_size']}; heads fine-tuned {cfg['ft_epochs']} epochs on randomly corrupted "
            f"training data (backbone frozen); {len(CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities "
            f"on {len(data.test)} test canvases.\n\n" + summarize(sc))
    write_summary(out, text, plot(sc), t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
