"""Study A4 (Paper A, Elich et al.): does multi-task training transfer better under corruptions?

    python -m experiments.paper_a.corruptions --preset quick [--from-study results/optimizer_study/quick]
    python -m experiments.paper_a.corruptions --preset paper --dataset nyuv2 --arch deeplab_resnet50 --data-dir ...

1. Trains the clean models, per seed: one single-task (STL) model per task and
   one multi-task (MTL) model per method, each keeping its best epoch on
   validation (STL: its task's primary metric; MTL: delta-m against that seed's
   STL runs). Methods: Paper A's six, EW, UW, RLW, IMTL, PCGrad, CAGrad (UW and
   CAGrad in LibMTL's settings, ``uw_libmtl`` and ``cagrad_libmtl``), over seeds
   0, 1, 2 in ``paper``; EW, UW and PCGrad on seed 0 in ``quick``. With
   ``--from-study``, each model takes the configuration (optimizer, learning
   rate, weight decay, schedule) that study A1 chose for it
   (:mod:`experiments.paper_a.tuning`; IMTL, the hybrid, takes A1's IMTL-G one);
   without, ``--optimizer``/``--lr`` and A1's weight decay 1e-5.
2. Freezes each model's backbone (the shared encoder, its batch-norm statistics
   included) and fine-tunes its heads on corrupted training data (EW, the
   model's optimizer, learning rate and weight decay): each training image of
   each batch gets a corruption and a severity drawn at random
   (:func:`jaxmtl.data.corrupt_random`, seeded by the model's seed, the epoch
   and the batch). A single-task model's heads are all fine-tuned, each on its
   own loss (the frozen backbone keeps them independent); only its task is scored.
3. Tests each fine-tuned model on the clean test split and under every
   corruption and severity (14 corruptions x 5 severities,
   :mod:`jaxmtl.data.corruptions`: CIFAR-10-C's parameters, gray or colour
   operations as the images are; frost is left out, its frost photographs are not
   available offline), each test batch corrupted once (seeded by its index) for
   every model.
4. Scores each method, seed and task with Paper A's ``delta_t``
   (:func:`jaxmtl.analysis.corruption_delta`) on the task's primary metric (the
   first of its metrics: accuracy on Multi-Fashion; mIoU, absolute depth error,
   mean angle error on Cityscapes/NYUv2) against the STL model of the same seed:
   the mean over corruptions and severities of the relative metric kept by the
   MTL model minus that kept by the STL model, sign-flipped where higher is
   better; ``< 0`` means the MTL model copes better.

``--dataset`` (Multi-Fashion by default) takes every benchmark whose inputs are images in
[0, 1] (Cityscapes, NYUv2: ``--arch segnet|deeplab_resnet18|deeplab_resnet50``; CelebA), with
Paper A's training settings on it (:mod:`experiments.paper_a.protocols`).

Presets (size; GPU hours are estimates for one H100, not measurements: no GPU was available
to us; as :mod:`experiments.paper_a.conflicts` states them; summary.md states a run's own time):

* ``tiny``: tests (a few steps on fake files).
* ``quick``: EW, UW, PCGrad and the STL models, seed 0: Multi-Fashion 4096 canvases x 6
  epochs (minutes on a CPU); Cityscapes 512 / NYUv2 256 images x 6 epochs (minutes on a GPU).
* ``paper``: Paper A's six methods and the STL models x 3 seeds, heads fine-tuned 10
  epochs: Multi-Fashion (about 1 GPU h); Cityscapes, 2,678 training images x 300 epochs,
  batch 64, 24 models (about 25-35 GPU h with SegNet, 50-70 with DeepLabV3+ ResNet-50);
  NYUv2, 716 images x 200 epochs, batch 8, 27 models (about 15-30 GPU h with SegNet). The
  corruptions are made on the CPU (NumPy, one thread beside the training): measured on our
  shared 2-core CPU (load about 13, so upper bounds), a random corruption takes 0.11 s per
  128x256 image and 0.26 s per 288x384 one (10 fine-tuning epochs: up to 50 min per Cityscapes
  model, 30 per NYUv2 one, partly hidden behind the GPU's steps), and the 70 test versions
  2.3 s and 5.2 s per image (once for all models: up to 20 min on Cityscapes' 500 test images,
  an hour on NYUv2's 654).

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
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import serialization  # noqa: E402
from tqdm import tqdm  # noqa: E402

import jaxmtl  # noqa: E402
from experiments.cli import (at_least, method_names, out_dir, run_main, study_data, study_parser,  # noqa: E402
                             with_overrides)
from experiments.datasets import DATASETS  # noqa: E402
from experiments.optimizers import make_optimizer  # noqa: E402
from experiments.paper_a.protocols import preset  # noqa: E402
from experiments.paper_a.tuning import best_config, best_stl, configuration_options, manual_config  # noqa: E402
from experiments.report import markdown_table, mean_std, model_label, open_store, png_bytes, write_summary  # noqa: E402
from experiments.runs import (LIBMTL_SETTINGS, METHODS, Hook, RunSpec, device_mesh, steps_per_epoch,  # noqa: E402
                              steps_per_run, train_run)
from experiments.selection import epoch_score, stl_baselines  # noqa: E402
from jaxmtl.analysis import corruption_delta  # noqa: E402
from jaxmtl.data import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random, prefetch  # noqa: E402
from jaxmtl.data.tasks import higher_is_better  # noqa: E402
from jaxmtl.models import shared_mask  # noqa: E402
from jaxmtl.training import atomic_write, evaluate_tasks, make_task_eval_step, make_task_train_step  # noqa: E402
from jaxmtl.training.steps import split_variables  # noqa: E402

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


def clean_specs(cfg: dict, args, num_tasks: int, dataset: dict | None = None) -> dict[str, RunSpec]:
    """The clean models by name: ``stl<t>/s<seed>`` and ``<method>/s<seed>`` (``dataset``: the
    :class:`~experiments.runs.RunSpec` fields naming the data set and model)."""
    default = manual_config(args, cfg.get("lr_schedule", "constant"))
    stl_cfg = {t: default for t in range(num_tasks)}
    mtl_cfg = {m: default for m in cfg["methods"]}
    if args.from_study:
        study = Path(args.from_study)
        stl_cfg = {t: best_stl(study, t) for t in range(num_tasks)}
        mtl_cfg = {m: best_config(study, A1_ROW.get(m, m)) for m in cfg["methods"]}
    specs = {}
    for seed in cfg["seeds"]:
        common = dict(seed=seed, epochs=cfg["epochs"], batch_size=cfg["batch_size"], data=dict(cfg["data"], seed=0),
                      **(dataset or {}))
        specs.update({f"stl{t}/s{seed}": RunSpec(method="stl", stl_task=t, **c, **common) for t, c in stl_cfg.items()})
        specs.update({f"{m}/s{seed}": RunSpec(method=m, **c, **common) for m, c in mtl_cfg.items()})
    return specs


def model_path(out: Path, spec: RunSpec, suffix: str = "") -> Path:
    """Where the variables of the clean model ``spec`` (``suffix``: of its fine-tuned version) lie."""
    return out / "models" / f"{spec.key.replace('/', '_')}{suffix}.msgpack"


class KeepBest(Hook):
    """Keeps the variables (parameters and batch-norm statistics) of the epoch chosen on
    validation (:func:`experiments.selection.epoch_score`; ``legacy``: Multi-Fashion's record)."""

    variables = True

    def __init__(self, spec: RunSpec, tasks, base_val: dict | None, legacy: bool = False):
        self.owner = {"spec": {"stl_task": spec.stl_task}, "tasks": [t.name for t in tasks]}
        if not legacy:
            self.owner.update(directions=higher_is_better(tasks),
                              metrics={t.name: [m.name for m in t.metrics] for t in tasks})
        self.base_val, self.best = base_val, None

    def on_epoch(self, record, variables):
        score = epoch_score(self.owner, record, self.base_val)
        if self.best is None or score < self.best[0]:
            self.best = (score, record["epoch"], variables)

    def record(self) -> dict:
        return {} if self.best is None else {"selected_epoch": self.best[1]}


def train_clean(spec: RunSpec, data, base_val, model_path: Path, bar, mesh=None) -> dict:
    """Trains ``spec`` and saves the variables of its epoch chosen on validation."""
    bench = DATASETS[spec.dataset]
    keep = KeepBest(spec, bench.tasks(data, spec.tasks), base_val, bench.legacy_record)
    record = train_run(spec, data, progress=bar, hooks=[keep], mesh=mesh)
    if keep.best is None:
        raise FloatingPointError(f"{spec.label} diverged in its first epoch: choose another learning rate")
    atomic_write(model_path, serialization.to_bytes(keep.best[2]))
    return record


class Model:
    """The model, tasks and input of the runs of one data set and architecture (every
    model of the study): ``init`` variables (to read saved ones into), the eval step."""

    def __init__(self, spec: RunSpec, data):
        self.bench = bench = DATASETS[spec.dataset]
        self.module = bench.model(data, spec.arch or bench.archs[0], spec.tiny, spec.dropout, spec.tasks)
        self.tasks = bench.tasks(data, spec.tasks)
        self.input_key = bench.input_key
        example = next(iter(bench.batches(data.train, 1)))[self.input_key]
        self.init = self.module.init(jax.random.PRNGKey(0), example)
        self.colour = np.shape(example)[-1] == 3
        self.eval = make_task_eval_step(self.module.apply, self.tasks, input_key=self.input_key)
        self.primary = [t.metrics[0].name for t in self.tasks]
        self.higher = [t.metrics[0].higher_is_better for t in self.tasks]
        self._fine_tune_steps: dict[tuple, tuple] = {}

    def fine_tune_step(self, spec: RunSpec):
        """``(tx, step)`` fine-tuning the heads as ``spec``'s optimizer does, the backbone frozen
        (one compiled step per optimizer, learning rate and weight decay)."""
        key = (spec.optimizer, spec.lr, spec.weight_decay)
        if key not in self._fine_tune_steps:
            t = len(self.tasks)
            tx = optax.chain(make_optimizer(spec.optimizer, spec.lr, jaxmtl.linear(num_tasks=t), num_tasks=t,
                                            shared=shared_mask, weight_decay=spec.weight_decay),
                             optax.masked(optax.set_to_zero(), shared_mask))
            self._fine_tune_steps[key] = tx, make_task_train_step(self.frozen_apply, tx, self.tasks, shared=shared_mask,
                                                                  input_key=self.input_key)
        return self._fine_tune_steps[key]

    def load(self, path: Path) -> dict:
        return serialization.from_bytes(self.init, path.read_bytes())

    def frozen_apply(self, variables, x, **kwargs):
        """The model with its backbone's parameters held constant (no gradient reaches them)."""
        params = dict(variables["params"], encoder=jax.lax.stop_gradient(variables["params"]["encoder"]))
        return self.module.apply({**variables, "params": params}, x, **kwargs)


def corrupted_batches(batches, input_key: str, seed: tuple[int, ...]):
    """``batches`` with each image under a random corruption and severity
    (:func:`jaxmtl.data.corrupt_random`, seeded by ``seed`` and the batch's index)."""
    for i, batch in enumerate(batches):
        images, _, _ = corrupt_random(np.asarray(batch[input_key]), seed=[*seed, i])
        yield {**batch, input_key: images}


def fine_tune(spec: RunSpec, variables: dict, data, model: Model, ft_epochs: int, bar) -> dict:
    """``variables`` after ``ft_epochs`` epochs of head fine-tuning on randomly corrupted
    training batches: EW over every task with the run's optimizer, learning rate and weight
    decay, the backbone's parameters and batch-norm statistics left as they are."""
    tx, step = model.fine_tune_step(spec)
    params, state = split_variables(variables)
    frozen = state
    opt_state = tx.init(params)
    rng, key = np.random.default_rng(spec.seed), jax.random.PRNGKey(spec.seed)
    for epoch in range(ft_epochs):
        train = model.bench.batches(data.train, spec.batch_size, rng)
        for batch in prefetch(corrupted_batches(train, model.input_key, (spec.seed, epoch)), device_put=False):
            key, sub = jax.random.split(key)
            variables, opt_state, _ = step({"params": params, **state}, opt_state, batch, sub)
            params, state = split_variables(variables)
            state = jax.tree.map(lambda keep, old, new: old if keep else new, shared_mask(state), frozen, state)
            bar.update(1)
    return {"params": params, **state}


def test_all(models: dict[str, tuple[dict, list[int]]], model: Model, data, batch_size: int, bar=None) -> dict:
    """Each model ``{name: (variables, tasks scored)}`` on the clean test split and under every
    corruption and severity (each test batch corrupted once, seeded by its index, for all
    models): ``{name: {"tasks_scored", "metric", "clean", "corrupted": {corruption: [per
    severity: [per task scored]]}}}``, the tasks' primary metrics."""
    clean = list(model.bench.batches(data.test, batch_size, drop_last=False))

    def scored(test_batches):
        out = {}
        for name, (variables, own) in models.items():
            result = evaluate_tasks(model.eval, variables, test_batches, model.tasks, model.input_key)
            out[name] = [result[model.tasks[k].name][model.primary[k]] for k in own]
        return out

    results = {name: {"tasks_scored": own, "metric": [model.primary[k] for k in own], "corrupted": {}}
               for name, (_, own) in models.items()}
    for name, values in scored(clean).items():
        results[name]["clean"] = values
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            if bar is not None:
                bar.set_description(f"testing under {c} {s}")
            batches = [{**b, model.input_key: corrupt(b[model.input_key], c, s, seed=i)} for i, b in enumerate(clean)]
            for name, values in scored(batches).items():
                results[name]["corrupted"].setdefault(c, []).append(values)
            if bar is not None:
                bar.update(1)
    return results


def scores(mtl: dict, stls: list[dict], tasks: list[str], higher: list[bool]) -> dict:
    """Per task: ``delta_t`` of one fine-tuned MTL model against the fine-tuned STL
    models ``stls`` (one per task) on the task's primary metric (``higher``: whether
    higher is better, per task), overall, per corruption and per severity, and the
    fraction of the clean metric kept."""
    out = {}
    for t, task in enumerate(tasks):
        stl = stls[t]
        m = np.array([[s[mtl["tasks_scored"].index(t)] for s in mtl["corrupted"][c]] for c in CORRUPTIONS])
        s_ = np.array([[s[0] for s in stl["corrupted"][c]] for c in CORRUPTIONS])
        mc, sc = mtl["clean"][mtl["tasks_scored"].index(t)], stl["clean"][0]
        up = higher[t]
        out[task] = {"delta": corruption_delta(m, s_, mc, sc, up),
                     "per_corruption": [corruption_delta(m[i], s_[i], mc, sc, up) for i in range(len(m))],
                     "per_severity": [corruption_delta(m[:, j], s_[:, j], mc, sc, up) for j in range(m.shape[1])],
                     "mtl_kept": (m / mc).mean(axis=1).tolist(), "stl_kept": (s_ / sc).mean(axis=1).tolist(),
                     "mtl_clean": mc, "stl_clean": sc}
    return out


def all_scores(results: dict[str, dict], cfg: dict, tasks: list[str], higher: list[bool]) -> dict[str, dict[int, dict]]:
    """``{method: {seed: scores}}`` from the fine-tuned results by model name."""
    return {m: {s: scores(results[f"{m}/s{s}"], [results[f"stl{t}/s{s}"] for t in range(len(tasks))], tasks, higher)
                for s in cfg["seeds"]} for m in cfg["methods"]}


def summarize(sc: dict[str, dict[int, dict]], tasks: list[str], metrics: list[str]) -> str:
    """The δ_t tables; ``metrics``: each task's primary metric (accuracies shown in %)."""
    label = lambda m: METHOD_LABELS.get(m, m)
    scale = [100 if m == "accuracy" else 1 for m in metrics]
    shown = [f"{m} (%)" if m == "accuracy" else m for m in metrics]
    seeds = sorted(next(iter(sc.values())))
    pct = lambda v: f"{100 * v:+.2f}"
    main_rows = []
    for m, by_seed in sc.items():
        for k, t in enumerate(tasks):
            deltas = [by_seed[s][t]["delta"] for s in seeds]
            fmt = "{:.1f}" if metrics[k] == "accuracy" else "{:.4g}"
            main_rows.append([label(m), t, mean_std([100 * d for d in deltas], "{:+.2f}"),
                              *[pct(d) for d in deltas], shown[k],
                              mean_std([scale[k] * by_seed[s][t]["mtl_clean"] for s in seeds], fmt),
                              mean_std([scale[k] * by_seed[s][t]["stl_clean"] for s in seeds], fmt)])
    main = markdown_table(["method", "task", "δ_t (%), mean ± std", *[f"seed {s}" for s in seeds],
                           "metric", "MTL clean", "STL clean"], main_rows)
    cells = [(m, t) for m in sc for t in tasks]
    mean_of = lambda m, t, key, i: float(np.mean([sc[m][s][t][key][i] for s in seeds]))
    corr_rows = [[name, *[pct(mean_of(m, t, "per_corruption", i)) for m, t in cells]]
                 for i, name in enumerate(CORRUPTIONS)]
    sev_rows = [[sev, *[pct(mean_of(m, t, "per_severity", j)) for m, t in cells]] for j, sev in enumerate(SEVERITIES)]
    head = [f"{label(m)}: {t}" for m, t in cells]
    negative = sum(np.mean([sc[m][s][t]["delta"] for s in seeds]) < 0 for m, t in cells)
    both = [label(m) for m in sc if all(np.mean([sc[m][s][t]["delta"] for s in seeds]) < 0 for t in tasks)]
    statement = (f"{negative} of {len(cells)} (method, task) pairs have δ_t < 0 (the MTL model keeps more of its "
                 f"clean metric than the STL one); methods better than STL on every task: "
                 f"{', '.join(both) or 'none'}.")
    return ("## δ_t per method and task\n\n" + main + "\n\nδ_t = mean over corruptions and severities of "
            "±(MTL metric / MTL clean metric − STL metric / STL clean metric), in %, on each task's primary "
            "metric, against the STL model of the same seed, the sign − where higher is better; "
            "< 0: the MTL model keeps more of its clean performance. Clean values are the fine-tuned models' "
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


IMAGE_DATASETS = tuple(name for name, bench in DATASETS.items() if bench.unit_images)
"""The benchmarks whose inputs are images in [0, 1] (QM9's are molecular graphs, Multi-MNIST's
batches are normalised with MNIST's mean and standard deviation, paper C's)."""


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, "corruptions", PRESETS, PRESET_NOTES, datasets=IMAGE_DATASETS,
                          why="it corrupts images in [0, 1]: QM9's inputs are molecular graphs, Multi-MNIST's "
                              "are normalised with MNIST's mean and standard deviation (paper C's)")
    configuration_options(parser, "its best configurations")
    parser.add_argument("--methods", nargs="+", type=method_names([*METHODS, *LIBMTL_SETTINGS]), default=None,
                        metavar="METHOD",
                        help="the MTL models' methods: registry names, labels or LibMTL/TorchJD names, or Paper "
                             "A's LibMTL settings " + ", ".join(LIBMTL_SETTINGS) + " (default: the preset's; "
                             "paper: Paper A's six)")
    parser.add_argument("--seeds", nargs="+", type=at_least(0), default=None, help="the training seeds")
    args = parser.parse_args(argv)
    cfg = with_overrides(preset(PRESETS, args.preset, args.dataset), args, ("methods", "seeds"))
    bench = DATASETS[args.dataset]
    out = out_dir(args, "corruptions")
    store = open_store(out)
    t0 = time.time()
    data, dataset = study_data(args, dict(cfg["data"]))
    specs = clean_specs(cfg, args, len(bench.tasks(data, dataset.get("tasks"))), dataset)
    model = Model(next(iter(specs.values())), data)
    tasks = [t.name for t in model.tasks]
    ft_key = lambda spec: f"{spec.key}-ft{cfg['ft_epochs']}"
    ft_suffix = f"-ft{cfg['ft_epochs']}"
    todo_clean = [n for n, s in specs.items() if s.key not in store]
    todo_test = [n for n, s in specs.items() if ft_key(s) not in store]
    todo_ft = [n for n in todo_test if not model_path(out, specs[n], ft_suffix).exists()]
    print(f"clean models to train: {todo_clean or 'none'}; to fine-tune: {todo_ft or 'none'}; "
          f"to test: {todo_test or 'none'}")
    ft_steps = cfg["ft_epochs"] * steps_per_epoch(next(iter(specs.values())), data)
    total = sum(steps_per_run(specs[n], data) for n in todo_clean) + ft_steps * len(todo_ft) + \
        (len(CORRUPTIONS) * len(SEVERITIES) if todo_test else 0)
    with tqdm(total=total, unit="step", dynamic_ncols=True, disable=not total) as bar:
        for name in sorted(todo_clean, key=lambda n: not n.startswith("stl")):  # STL first: MTL selects on delta-m
            bar.set_description(f"clean {name}")
            spec = specs[name]
            base_val = None if spec.stl_task is not None else stl_baselines(
                [store.get(specs[f"stl{t}/s{spec.seed}"].key) for t in range(len(tasks))])[0][spec.seed]
            store.add(train_clean(spec, data, base_val, model_path(out, spec), bar, device_mesh(args.devices)))
        for name in todo_ft:
            bar.set_description(f"fine-tune {name}")
            spec = specs[name]
            tuned = fine_tune(spec, model.load(model_path(out, spec)), data, model, cfg["ft_epochs"], bar)
            atomic_write(model_path(out, spec, ft_suffix), serialization.to_bytes(tuned))
        if todo_test:
            own = lambda spec: list(range(len(tasks))) if spec.stl_task is None else [spec.stl_task]
            tested = test_all({n: (model.load(model_path(out, specs[n], ft_suffix)), own(specs[n])) for n in todo_test},
                              model, data, bench.eval_batch_size or cfg["batch_size"], bar)
            for name, result in tested.items():
                store.add(dict(result, key=ft_key(specs[name]), model=name, label=specs[name].label))
    sc = all_scores({n: store.get(ft_key(s)) for n, s in specs.items()}, cfg, tasks, model.higher)
    models = "; ".join(f"{n} = {s.label} (wd {s.weight_decay:g}, {s.lr_schedule} lr)"
                       for n, s in specs.items() if n.endswith(f"/s{cfg['seeds'][0]}"))
    text = (f"Methods {[METHOD_LABELS.get(m, m) for m in cfg['methods']]}, seeds {cfg['seeds']}, model "
            f"{model_label(bench, dataset['arch'], dataset['tiny'])}; "
            f"clean models (seed {cfg['seeds'][0]}; the other seeds alike): {models}"
            f"{' (configurations chosen by study A1)' if args.from_study else ''}; {cfg['epochs']} epochs, batch "
            f"{cfg['batch_size']}; heads fine-tuned {cfg['ft_epochs']} epochs on randomly corrupted training data "
            f"(backbone frozen); {len(CORRUPTIONS)} corruptions x {len(SEVERITIES)} severities "
            f"({'colour' if model.colour else 'grayscale'} images; frost left out: its photographs "
            f"are not available offline) on {len(data.test)} test {bench.unit}.\n\n"
            + summarize(sc, tasks, model.primary))
    write_summary(out, f"Study A4: transfer under corruptions on {bench.title}", args.preset, text, plot(sc, tasks), t0)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
