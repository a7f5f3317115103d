"""Study A4 (Paper A, Elich et al.): does multi-task training transfer better under corruptions?

    python -m experiments.paper_a.corruptions --preset quick [--from-study results/optimizer_study/quick]

1. Trains the clean models, per seed: one single-task (STL) model per task and
   one multi-task (MTL) model per method, each keeping its best epoch on
   validation (STL: its task's accuracy; MTL: delta-m against that seed's STL
   runs). Methods: Paper A's six, EW, UW, RLW, IMTL, PCGrad, CAGrad (UW and
   CAGrad in LibMTL's settings, ``uw_libmtl`` and ``cagrad_libmtl``), over seeds
   0, 1, 2 in ``paper``; EW, UW and PCGrad on seed 0 in ``quick``. With
   ``--from-study``, each model takes the configuration (optimizer, learning
   rate, weight decay, schedule) that study A1 chose for it
   (:mod:`experiments.paper_a.tuning`; IMTL, the hybrid, takes A1's IMTL-G one);
   without, ``--optimizer``/``--lr`` and A1's weight decay 1e-5.
2. Freezes each model's backbone (the shared encoder) and fine-tunes its
   head(s) on corrupted training data: every epoch each image gets a
   corruption and a severity drawn at random (:func:`jaxmtl.data.corrupt_random`).
3. Tests each fine-tuned model on clean data and under every corruption and
   severity (14 corruptions x 5 severities, :mod:`jaxmtl.data.corruptions`).
4. Scores each method, seed and task with Paper A's ``delta_t``
   (:func:`jaxmtl.analysis.corruption_delta`) against the STL model of the same
   seed: the mean over corruptions and severities of the relative accuracy kept
   by the MTL model minus that kept by the STL model, sign-flipped; ``< 0`` means
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
from experiments.cli import method_names, run_main, study_data, study_parser, with_overrides  # noqa: E402
from experiments.datasets import DEFAULT  # noqa: E402
from experiments.report import markdown_table, mean_std, open_store, png_bytes, write_summary  # noqa: E402
from experiments.runs import (LIBMTL_SETTINGS, METHODS, Hook, RunSpec, device_mesh, steps_per_run,  # noqa: E402
                              train_run)
from experiments.selection import epoch_score, stl_baselines  # noqa: E402
from experiments.paper_a.tuning import WEIGHT_DECAY, best_config, best_stl  # noqa: E402
from experiments.optimizers import make_optimizer  # noqa: E402
from jaxmtl.analysis import corruption_delta  # noqa: E402
from jaxmtl.data import CORRUPTIONS, SEVERITIES, Split, batches, corrupt, corrupt_random  # noqa: E402
from jaxmtl.models import MultiLeNet, shared_mask  # noqa: E402
from jaxmtl.training import atomic_write, evaluate, make_eval_step, make_train_step  # noqa: E402

PAPER_METHODS = ["ew", "uw_libmtl", "rlw", "imtl", "pcgrad", "cagrad_libmtl"]
"""Paper A's six methods in A4 (UW and CAGrad as LibMTL runs them)."""
METHOD_LABELS = {"ew": "EW", "uw_libmtl": "UW", "rlw": "RLW", "imtl": "IMTL", "pcgrad": "PCGrad",
                 "cagrad_libmtl": "CAGrad"}
A1_ROW = {"imtl": "imtl_g"}
"""The A1 row whose configuration a method takes when A1 did not train it."""
PRESETS = {
    "tiny": dict(data=dict(n_train=128, n_val=64, n_test=64), epochs=1, ft_epochs=1, batch_size=32,
                 methods=["ew"], seeds=[0]),
    "quick": dict(data=dict(n_train=4096, n_val=1024, n_test=1024), epochs=6, ft_epochs=2, batch_size=64,
                  methods=["ew", "uw_libmtl", "pcgrad"], seeds=[0]),
    "paper": dict(data=dict(), epochs=30, ft_epochs=10, batch_size=256, methods=PAPER_METHODS, seeds=[0, 1, 2]),
}

PRESET_NOTES = {
    "tiny": "smoke run: 128 canvases, EW and the STL models for 1 epoch, 1 fine-tuning epoch; about a minute on CPU",
    "quick": "EW, UW (LibMTL), PCGrad and 2 STL models, 4096 canvases, 6 epochs + 2 fine-tuning, 14 corruptions x "
             "5 severities, 1 seed; CPU ~7 min (the 3-seed, 6-method run took 1233 s), GPU ~3 min",
    "paper": "Paper A's six methods x 3 seeds, full Multi-Fashion, 30 epochs + 10 fine-tuning; CPU ~2 days, "
             "GPU ~2 h",
}


def clean_specs(cfg: dict, args, num_tasks: int) -> dict[str, RunSpec]:
    """The clean models by name: ``stl<t>/s<seed>`` and ``<method>/s<seed>``."""
    default = dict(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, lr_schedule="constant")
    stl_cfg = {t: default for t in range(num_tasks)}
    mtl_cfg = {m: default for m in cfg["methods"]}
    if args.from_study:
        study = Path(args.from_study)
        stl_cfg = {t: best_stl(study, t) for t in range(num_tasks)}
        mtl_cfg = {m: best_config(study, A1_ROW.get(m, m)) for m in cfg["methods"]}
    specs = {}
    for seed in cfg["seeds"]:
        common = dict(seed=seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=dict(cfg["data"], seed=0))
        specs.update({f"stl{t}/s{seed}": RunSpec(method="stl", stl_task=t, **c, **common) for t, c in stl_cfg.items()})
        specs.update({f"{m}/s{seed}": RunSpec(method=m, **c, **common) for m, c in mtl_cfg.items()})
    return specs


def model_path(out: Path, spec: RunSpec) -> Path:
    return out / "models" / f"{spec.key.replace('/', '_')}.msgpack"


class KeepBest(Hook):
    """Keeps the parameters of the epoch chosen on validation (:func:`experiments.selection.epoch_score`)."""

    def __init__(self, spec: RunSpec, tasks: list[str], base_val: dict | None):
        self.owner = {"spec": {"stl_task": spec.stl_task}, "tasks": tasks}
        self.base_val, self.best = base_val, None

    def on_epoch(self, record, params):
        score = epoch_score(self.owner, record, self.base_val)
        if self.best is None or score < self.best[0]:
            self.best = (score, record["epoch"], params)

    def record(self) -> dict:
        return {} if self.best is None else {"selected_epoch": self.best[1]}


def train_clean(spec: RunSpec, data, base_val, model_path: Path, bar, mesh=None) -> dict:
    """Trains ``spec`` and saves the parameters of its epoch chosen on validation."""
    keep = KeepBest(spec, list(data.tasks), base_val)
    record = train_run(spec, data, progress=bar, hooks=[keep], mesh=mesh)
    if keep.best is None:
        raise FloatingPointError(f"{spec.label} diverged in its first epoch: choose another learning rate")
    atomic_write(model_path, serialization.to_bytes(keep.best[2]))
    return record


def fine_tune_and_test(spec: RunSpec, params, data, test_sets: dict, ft_epochs: int, bar) -> dict:
    """Fine-tunes the heads on randomly corrupted training data and tests everywhere."""
    num_tasks = len(data.tasks)
    model = MultiLeNet(num_tasks=num_tasks, num_classes=data.num_classes)
    tasks = None if spec.stl_task is None else (spec.stl_task,)
    t = num_tasks if tasks is None else 1
    tx = optax.chain(make_optimizer(spec.optimizer, spec.lr, jaxmtl.linear(num_tasks=t), num_tasks=t,
                                    shared=shared_mask, weight_decay=spec.weight_decay),
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


def scores(mtl: dict, stls: list[dict], tasks: list[str]) -> dict:
    """Per task: ``delta_t`` of one fine-tuned MTL model against the fine-tuned STL
    models ``stls`` (one per task), overall, per corruption and per severity, and
    the accuracies kept."""
    out = {}
    for t, task in enumerate(tasks):
        stl = stls[t]
        m = np.array([[s[mtl["tasks_scored"].index(t)] for s in mtl["corrupted"][c]] for c in CORRUPTIONS])
        s_ = np.array([[s[0] for s in stl["corrupted"][c]] for c in CORRUPTIONS])
        mc, sc = mtl["clean"][mtl["tasks_scored"].index(t)], stl["clean"][0]
        out[task] = {"delta": corruption_delta(m, s_, mc, sc, True),
                     "per_corruption": [corruption_delta(m[i], s_[i], mc, sc, True) for i in range(len(m))],
                     "per_severity": [corruption_delta(m[:, j], s_[:, j], mc, sc, True) for j in range(m.shape[1])],
                     "mtl_kept": (m / mc).mean(axis=1).tolist(), "stl_kept": (s_ / sc).mean(axis=1).tolist(),
                     "mtl_clean": mc, "stl_clean": sc}
    return out


def all_scores(results: dict[str, dict], cfg: dict, tasks: list[str]) -> dict[str, dict[int, dict]]:
    """``{method: {seed: scores}}`` from the fine-tuned results by model name."""
    return {m: {s: scores(results[f"{m}/s{s}"], [results[f"stl{t}/s{s}"] for t in range(len(tasks))], tasks)
                for s in cfg["seeds"]} for m in cfg["methods"]}


def summarize(sc: dict[str, dict[int, dict]], tasks: list[str]) -> str:
    label = lambda m: METHOD_LABELS.get(m, m)
    seeds = sorted(next(iter(sc.values())))
    pct = lambda v: f"{100 * v:+.2f}"
    main_rows = []
    for m, by_seed in sc.items():
        for t in tasks:
            deltas = [by_seed[s][t]["delta"] for s in seeds]
            main_rows.append([label(m), t, mean_std([100 * d for d in deltas], "{:+.2f}"),
                              *[pct(d) for d in deltas],
                              mean_std([100 * by_seed[s][t]["mtl_clean"] for s in seeds], "{:.1f}"),
                              mean_std([100 * by_seed[s][t]["stl_clean"] for s in seeds], "{:.1f}")])
    main = markdown_table(["method", "task", "δ_t (%), mean ± std", *[f"seed {s}" for s in seeds],
                           "MTL clean acc (%)", "STL clean acc (%)"], main_rows)
    cells = [(m, t) for m in sc for t in tasks]
    mean_of = lambda m, t, key, i: float(np.mean([sc[m][s][t][key][i] for s in seeds]))
    corr_rows = [[name, *[pct(mean_of(m, t, "per_corruption", i)) for m, t in cells]]
                 for i, name in enumerate(CORRUPTIONS)]
    sev_rows = [[sev, *[pct(mean_of(m, t, "per_severity", j)) for m, t in cells]] for j, sev in enumerate(SEVERITIES)]
    head = [f"{label(m)}: {t}" for m, t in cells]
    negative = sum(np.mean([sc[m][s][t]["delta"] for s in seeds]) < 0 for m, t in cells)
    both = [label(m) for m in sc if all(np.mean([sc[m][s][t]["delta"] for s in seeds]) < 0 for t in tasks)]
    statement = (f"{negative} of {len(cells)} (method, task) pairs have δ_t < 0 (the MTL model keeps more of its "
                 f"clean accuracy than the STL one); methods better than STL on every task: "
                 f"{', '.join(both) or 'none'}.")
    return ("## δ_t per method and task\n\n" + main + "\n\nδ_t = mean over corruptions and severities of "
            "−(MTL acc / MTL clean acc − STL acc / STL clean acc), in %, against the STL model of the same seed; "
            "< 0: the MTL model keeps more of its clean accuracy. Clean accuracies are the fine-tuned models' "
            "on clean test data.\n\n" + statement + "\n\n"
            "## δ per corruption (%, mean over severities and seeds)\n\n" +
            markdown_table(["corruption", *head], corr_rows) +
            "\n\n## δ per severity (%, mean over corruptions and seeds)\n\n" +
            markdown_table(["severity", *head], sev_rows) + "\n")


def plot(sc: dict[str, dict[int, dict]], tasks: list[str]) -> bytes:
    cells = [(m, t) for m in sc for t in tasks]
    seeds = sorted(next(iter(sc.values())))
    mean_of = lambda m, t, key: 100 * np.mean([sc[m][s][t][key] for s in seeds], axis=0)
    names = [f"{METHOD_LABELS.get(m, m)}: {t}" for m, t in cells]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 1.5 + 0.35 * len(cells)),
                                   gridspec_kw={"width_ratios": [3, 1]})
    grid = np.array([mean_of(m, t, "per_corruption") for m, t in cells])
    lim = max(np.abs(grid).max(), 1e-6)
    im = ax1.imshow(grid, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax1.set_xticks(range(len(CORRUPTIONS)), list(CORRUPTIONS), rotation=40, ha="right", fontsize=8)
    ax1.set_yticks(range(len(cells)), names, fontsize=8)
    for (i, j), v in np.ndenumerate(grid):
        ax1.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax1, label="δ (%), < 0: MTL copes better")
    ax1.set_title(f"δ per method, task and corruption (mean over severities and seeds {seeds})", fontsize=9)
    for (m, t), name in zip(cells, names):
        ax2.plot(SEVERITIES, mean_of(m, t, "per_severity"), marker="o", label=name)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("severity")
    ax2.set_ylabel("δ (%)")
    ax2.set_title("δ per severity", fontsize=9)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return png_bytes(fig)


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "corruptions", PRESETS, PRESET_NOTES, datasets=(DEFAULT,),
                          why="its corruptions are image corruptions of the 36x36 grayscale Multi-Fashion "
                              "canvases (jaxmtl.data.corruptions) and its models are selected on accuracy")
    parser.add_argument("--from-study", default=None, help="an optimizer_study output directory: its best configurations")
    parser.add_argument("--methods", nargs="+", type=method_names([*METHODS, *LIBMTL_SETTINGS]), default=None,
                        metavar="METHOD",
                        help="the MTL models' methods: registry names, labels or LibMTL/TorchJD names, or Paper "
                             "A's LibMTL settings " + ", ".join(LIBMTL_SETTINGS) + " (default: the preset's; "
                             "paper: Paper A's six)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="the training seeds")
    parser.add_argument("--optimizer", default="adam", help="without --from-study")
    parser.add_argument("--lr", type=float, default=1e-3, help="without --from-study")
    parser.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY, help="without --from-study (A1's)")
    args = parser.parse_args(argv)
    cfg = with_overrides(PRESETS[args.preset], args, ("methods", "seeds"))
    out = Path(args.out or f"results/corruptions/{args.preset}")
    store = open_store(out)
    t0 = time.time()
    data, _ = study_data(args, dict(cfg["data"]))
    tasks = list(data.tasks)
    specs = clean_specs(cfg, args, len(tasks))
    ft_key = lambda spec: f"{spec.key}-ft{cfg['ft_epochs']}"
    ft_steps = cfg["ft_epochs"] * (len(data.train) // cfg["batch_size"])
    todo_clean = [n for n, s in specs.items() if s.key not in store]
    todo_ft = [n for n, s in specs.items() if ft_key(s) not in store]
    print(f"clean models to train: {todo_clean or 'none'}; to fine-tune and test: {todo_ft or 'none'}")
    total = sum(steps_per_run(specs[n], data) for n in todo_clean) + ft_steps * len(todo_ft)
    with tqdm(total=total, unit="step", dynamic_ncols=True, disable=not total) as bar:
        for name in sorted(todo_clean, key=lambda n: not n.startswith("stl")):  # STL first: MTL selects on delta-m
            bar.set_description(f"clean {name}")
            spec = specs[name]
            base_val = None if spec.stl_task is not None else stl_baselines(
                [store.get(specs[f"stl{t}/s{spec.seed}"].key) for t in range(len(tasks))])[0][spec.seed]
            store.add(train_clean(spec, data, base_val, model_path(out, spec), bar, device_mesh(args.devices)))
        if todo_ft:
            bar.set_description("corrupting the test set")
            test_sets = {(c, s): Split(corrupt(data.test.images, c, s, seed=0), data.test.labels)
                         for c in CORRUPTIONS for s in SEVERITIES}
            init = MultiLeNet(num_tasks=len(tasks), num_classes=data.num_classes).init(
                jax.random.PRNGKey(0), jnp.zeros((1, *data.train.images.shape[1:])))["params"]
        for name in todo_ft:
            bar.set_description(f"fine-tune {name}")
            spec = specs[name]
            params = serialization.from_bytes(init, model_path(out, spec).read_bytes())
            result = fine_tune_and_test(spec, params, data, test_sets, cfg["ft_epochs"], bar)
            store.add(dict(result, key=ft_key(spec), model=name, label=spec.label))
    sc = all_scores({n: store.get(ft_key(s)) for n, s in specs.items()}, cfg, tasks)
    models = "; ".join(f"{n} = {s.label} (wd {s.weight_decay:g}, {s.lr_schedule} lr)"
                       for n, s in specs.items() if n.endswith(f"/s{cfg['seeds'][0]}"))
    text = (f"# Study A4: transfer under corruptions on Multi-Fashion (preset `{args.preset}`)\n\n"
            f"Methods {[METHOD_LABELS.get(m, m) for m in cfg['methods']]}, seeds {cfg['seeds']}; clean models "
            f"(seed {cfg['seeds'][0]}; the other seeds alike): {models}"
            f"{' (configurations chosen by study A1)' if args.from_study else ''}; {cfg['epochs']} epochs, batch "
            f"{cfg['batch_size']}; heads fine-tuned {cfg['ft_epochs']} epochs on randomly corrupted training data "
            f"(backbone frozen); {len(CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities on {len(data.test)} "
            f"test canvases.\n\n" + summarize(sc, tasks))
    write_summary(out, text, plot(sc, tasks), t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
