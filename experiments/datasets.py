"""The benchmarks a study can train on: ``name -> Benchmark(load, model, tasks, batches)``.

:func:`load_dataset` loads one with a study's data settings (``n_train`` etc. keep
the first examples of a split);
:func:`experiments.runs.train_run` trains any of them (``RunSpec.dataset``). No study
names a data set: what differs between them (splits, tasks, directions of the metrics,
default model and batch, record format, title) is a field of its :class:`Benchmark`.

Each entry pairs a loader (:mod:`jaxmtl.data`), the papers' model for it
(:mod:`jaxmtl.models`; ``tiny=True`` gives a few-channel version for tests and
smoke runs) and the data set's tasks (:class:`jaxmtl.data.Task`: loss, metrics,
direction), so the generic steps :func:`jaxmtl.training.make_task_train_step`
and :func:`~jaxmtl.training.make_task_eval_step` run any of them::

    bench = get("nyuv2")
    data = bench.load("~/data/nyuv2")
    model, tasks = bench.model(data), bench.tasks(data)
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key=bench.input_key)
    for batch in prefetch(bench.batches(data.train, 8, rng)): ...

``python -m experiments.datasets`` times, per benchmark and model, producing a
batch (prefetched) against one jitted UPGrad step on random inputs of the
paper's shapes (``--tiny`` for the few-channel models).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import jax
import numpy as np
import optax

import jaxmtl
from jaxmtl import metrics as M
from jaxmtl.data import (ATTRIBUTES, TARGETS, Task, attribute_tasks, batches, classification_tasks, dense_batches,
                         depth_task, instance_task, load_celeba, load_cityscapes, load_nyuv2, load_qm9,
                         make_multi_fashion, make_multi_mnist, normals_task, pair_batches, prefetch,
                         reconstruction_task, regression_tasks, segmentation_task)
from jaxmtl.data.multi_mnist import PAIRS, SOURCES, TASKS as MULTI_MNIST_TASK_SET
from jaxmtl.models import MPNN, DeepLabV3Plus, MixedLeNet, MultiLeNet, ResNetHeads, SegNet, shared_mask
from jaxmtl.training import make_task_train_step


@dataclass(frozen=True)
class Benchmark:
    """Everything a study needs to know of a data set.

    ``load(data_dir, **settings)`` -> data with ``train``/``val``/``test``;
    ``model(data, arch, tiny, dropout, tasks)`` the paper's model (``tasks``: the task
    names trained, ``None`` for the data set's own); ``tasks(data, names=None)`` the
    :class:`jaxmtl.data.Task` objects; ``batches(split, batch_size, rng=None,
    drop_last=True)``; ``input_key`` the batch key of the model input; ``archs`` the
    models (first = default); ``batch_size`` the paper's; ``title`` for summaries.
    """

    title: str
    load: Callable[..., Any]
    model: Callable[..., Any]
    tasks: Callable[..., tuple[Task, ...]]
    batches: Callable[..., Any]
    input_key: str
    archs: tuple[str, ...]
    batch_size: int
    eval_batch_size: int | None = None
    """Batch size of the evaluation passes (``None``: the run's training batch size)."""
    draws_subsets: bool = False
    """The loader takes ``n_train``/``n_val``/``n_test`` and ``seed`` itself (built canvases);
    otherwise :func:`load_dataset` keeps the first ``n_*`` examples of each split."""
    fixed_splits: bool = False
    """The loader's splits are fixed: it takes no ``seed``."""
    preset_batch: bool = False
    """The studies' preset batch sizes apply (small canvases); otherwise the paper's ``batch_size``."""
    task_names: tuple[str, ...] = ()
    """Every task a run may train (``--tasks``, ``RunSpec.tasks``); empty: the data set's set only."""
    tasks_in_loader: bool = False
    """``--tasks`` is a loader setting (the loader reads each task's files): part of the data settings."""
    problems: dict = dataclasses.field(default_factory=dict)
    """Named task sets a study compares (paper C's problems): ``{name: task names}``."""
    sources: tuple[str, ...] = ()
    """Where the loader's items may come from (its ``source`` setting; first = the study default)."""
    protocols: dict = dataclasses.field(default_factory=dict)
    """A study's settings on this data set, by study and preset (paper C's batch, epochs and grids
    per benchmark): ``{study: {preset: {setting: value}}}``, over the study's own preset."""
    legacy_record: bool = False
    """Records keep the original Multi-Fashion format (``val``/``test`` as ``{"loss": [...],
    "accuracy": [...]}``, no ``directions``/``metrics``): its stores predate the other data sets."""
    unit: str = "examples"
    """What one example is called in summaries (``'canvases'``)."""
    unit_images: bool = False
    """The model input is images with values in [0, 1] (what :mod:`jaxmtl.data.corruptions` takes)."""
    fake_batch: Callable[[int, np.random.Generator], dict] | None = None
    """A random batch of the paper's shapes (timing only)."""
    meta: dict = dataclasses.field(default_factory=dict)
    """What ``model`` and ``tasks`` read off loaded data, for models built without data (timing)."""


def _dense_model(channels: tuple[int, ...], arch: str, tiny: bool):
    if arch == "segnet":
        return SegNet(channels, filters=(2, 2, 4, 4, 4) if tiny else (64, 128, 256, 512, 512))
    if arch in ("deeplab_resnet18", "deeplab_resnet50"):
        backbone = arch.split("_")[1]
        if tiny:
            return DeepLabV3Plus(channels, backbone, width=2, aspp_channels=4, low_channels=2)
        return DeepLabV3Plus(channels, backbone)
    raise ValueError(f"unknown dense model {arch!r}: use segnet, deeplab_resnet18 or deeplab_resnet50")


DENSE_TASKS = {"segmentation": segmentation_task, "depth": depth_task, "normals": normals_task,
               "instance": instance_task}


def _dense_tasks(data, names=None) -> tuple[Task, ...]:
    return tuple(DENSE_TASKS[t]() for t in (names or data.tasks))


def _dense_channels(data, names=None) -> tuple[int, ...]:
    return tuple({"segmentation": data.num_classes, "depth": 1, "normals": 3, "instance": 2}[t]
                 for t in (names or data.tasks))


def _dense(data, arch="segnet", tiny=False, dropout=0.0, tasks=None):
    return _dense_model(_dense_channels(data, tasks), arch, tiny)


def _augmented(split, batch_size, rng=None, drop_last=True):
    """Random scale-and-crop on training batches (a shuffling ``rng``), as MTAN/LibMTL."""
    return dense_batches(split, batch_size, rng, drop_last, augment=rng is not None)


DENSE_ARCHS = ("segnet", "deeplab_resnet18", "deeplab_resnet50")
MULTI_MNIST_TASKS = ("CL", "CR")
"""Multi-MNIST's own task set (the classification pair); paper C trains the others by name."""


def _multi_mnist(data_dir=None, **kw):
    """Multi-MNIST from the four MNIST IDX files in ``data_dir`` (``source='mnist'`` unless given)."""
    return make_multi_mnist(data_dir, **{"source": "mnist", **kw})


def _multi_mnist_tasks(data, names=None) -> tuple[Task, ...]:
    """CL/CR: classify the left/right item (``labels`` columns), RL/RR: reconstruct it (``items``)."""
    out = []
    for name in names or MULTI_MNIST_TASKS:
        side = 0 if name.endswith("L") else 1
        out.append(Task(name, M.cross_entropy, (M.accuracy(),), "labels", side) if name.startswith("C")
                   else reconstruction_task(name, side))
    return tuple(out)


def _multi_mnist_model(data, arch="multilenet", tiny=False, dropout=0.0, tasks=None):
    return MixedLeNet(heads=tuple("classify" if t.startswith("C") else "reconstruct"
                                  for t in (tasks or MULTI_MNIST_TASKS)), dropout=dropout)


def _pair_batches(split, batch_size, rng=None, drop_last=True):
    return pair_batches(split, MULTI_MNIST_TASK_SET, batch_size, rng, drop_last)


def _canvas_batch(side: int):
    def fake(batch_size, rng):
        return {"image": rng.random((batch_size, side, side, 1), np.float32),
                "labels": rng.integers(0, 10, (batch_size, 2)).astype(np.int32)}
    return fake


def _dense_batch(h: int, w: int, classes: int, normals: bool):
    def fake(batch_size, rng):
        out = {"image": rng.random((batch_size, h, w, 3), np.float32),
               "segmentation": rng.integers(-1, classes, (batch_size, h, w)).astype(np.int32),
               "depth": rng.random((batch_size, h, w, 1), np.float32)}
        if normals:
            out["normals"] = rng.normal(size=(batch_size, h, w, 3)).astype(np.float32)
        return out
    return fake


def _celeba_batch(batch_size, rng):
    return {"image": rng.random((batch_size, 64, 64, 3), np.float32),
            "attributes": rng.integers(0, 2, (batch_size, 40)).astype(bool)}


def _qm9_batch(batch_size, rng):
    from jaxmtl.data.qm9 import molecule_graph

    graphs = [molecule_graph(rng.choice([1, 6, 7, 8], 29), rng.normal(size=(29, 3)) * 2, int(rng.integers(5, 29)))
              for _ in range(batch_size)]
    return {"graph": jax.tree.map(lambda *x: np.stack(x), *graphs),
            "targets": rng.normal(size=(batch_size, 11)).astype(np.float32)}


PAPER_C_CITYSCAPES = {
    "paper": dict(batch_size=32, epochs=150, lrs=[5e-3, 1e-3, 5e-4, 1e-4], weight_decays=[1e-4, 1e-5, 0.0],
                  dropouts=[0.0], seeds=[0, 1, 2], val_seeds=1, schedule="exp_decay", problems=["S+D+I"],
                  without=("rotograd",)),
    "tiny": dict(batch_size=2, epochs=1, lrs=[1e-3], weight_decays=[1e-4], dropouts=[0.0], problems=["S+D+I"],
                 without=("rotograd",)),
}
"""Paper C on Cityscapes (``scripts/cityscapes/*.sh``): batch 32, 150 epochs, the learning rate x weight
decay grid, one run per configuration then two more of the chosen one; the final benchmark's
segmentation, disparity and instance offsets (R18, 256x512, 19 classes: loader settings). ``without``:
RotoGrad, whose rotations need one feature array (paper C rotates 512 channels of its ResNet's last
map; our DeepLab's and SegNet's trunks output several maps)."""
PAPER_C_LADDER = {
    "R50": dict(arch="deeplab_resnet50", size=(128, 256), classes=7, problem="S+D"),
    "R18": dict(arch="deeplab_resnet18", size=(128, 256), classes=7, problem="S+D"),
    "+I": dict(arch="deeplab_resnet18", size=(128, 256), classes=7, problem="S+D+I"),
    "HR": dict(arch="deeplab_resnet18", size=(256, 512), classes=7, problem="S+D+I"),
    "19C": dict(arch="deeplab_resnet18", size=(256, 512), classes=19, problem="S+D+I"),
}
"""The rungs of paper C's Cityscapes complexity ladder (its Fig. 3b; ``scripts/cityscapes/progression/*.sh``):
model, loader settings and task set (:mod:`experiments.paper_c.ladder`)."""
PAPER_C_QM9 = {
    "paper": dict(batch_size=120, epochs=300, lrs=[5e-3, 1e-3, 5e-4, 1e-4], weight_decays=[0.0], dropouts=[0.0],
                  seeds=[0, 1, 2], val_seeds=1, schedule="plateau", problems=None),
    "tiny": dict(batch_size=2, epochs=1, lrs=[1e-3], weight_decays=[0.0], dropouts=[0.0], schedule="plateau",
                 problems=None),
}
"""Paper C on QM9 (``scripts/QM9/*.sh``): batch 120, 300 epochs, ReduceLROnPlateau(0.7, patience 5,
min 1e-5), the learning-rate grid, weight decay 0, one run per configuration then two more."""
_PAPER_A_DENSE_TINY = dict(data=dict(n_train=8, n_val=4, n_test=4, val_fraction=0.5), epochs=1, batch_size=2)
PAPER_A_CITYSCAPES = {
    "tiny": _PAPER_A_DENSE_TINY,
    "quick": dict(data=dict(n_train=512, n_val=128, n_test=128), epochs=6, batch_size=16),
    "paper": dict(data=dict(), epochs=300, batch_size=64, lr_schedule="step"),
}
"""Paper A's studies A3 and A4 on Cityscapes (see :mod:`experiments.paper_a.protocols`)."""
PAPER_A_NYUV2 = {
    "tiny": _PAPER_A_DENSE_TINY,
    "quick": dict(data=dict(n_train=256, n_val=64, n_test=128), epochs=6, batch_size=8),
    "paper": dict(data=dict(), epochs=200, batch_size=8, lr_schedule="step"),
}
"""Paper A's study A4 on NYUv2."""
PAPER_A_CELEBA = {
    "tiny": dict(data=dict(n_train=32, n_val=32, n_test=32), epochs=1, batch_size=8),
    "quick": dict(data=dict(n_train=8192, n_val=1024, n_test=1024), epochs=4, batch_size=128),
    "paper": dict(data=dict(), epochs=30, batch_size=256),
}
"""Paper A's study A3 on CelebA (*ours*: Sener & Koltun's batch)."""

DATASETS: dict[str, Benchmark] = {
    "multi_fashion": Benchmark(
        title="Multi-Fashion",
        load=lambda data_dir=None, **kw: make_multi_fashion(data_dir, **kw),
        model=lambda data, arch="multilenet", tiny=False, dropout=0.0, tasks=None: MultiLeNet(
            len(data.tasks), data.num_classes, dropout),
        tasks=lambda data, names=None: classification_tasks(data.tasks), batches=batches, input_key="image",
        archs=("multilenet",), batch_size=256, eval_batch_size=512, draws_subsets=True, preset_batch=True,
        legacy_record=True, unit="canvases", unit_images=True, fake_batch=_canvas_batch(36),
        meta=dict(tasks=("top_left", "bottom_right"), num_classes=10)),
    "multi_mnist": Benchmark(
        title="Multi-MNIST",
        load=_multi_mnist, model=_multi_mnist_model, tasks=_multi_mnist_tasks, batches=_pair_batches,
        input_key="image", archs=("multilenet",), batch_size=256, eval_batch_size=512, draws_subsets=True,
        preset_batch=True, task_names=MULTI_MNIST_TASK_SET,
        problems={**PAIRS, "CL+CR+RL": ("CL", "CR", "RL")}, sources=SOURCES, unit="canvases",
        fake_batch=_canvas_batch(28),
        meta=dict(tasks=MULTI_MNIST_TASKS, num_classes=10)),
    "cityscapes": Benchmark(
        title="Cityscapes",
        load=load_cityscapes, model=_dense, tasks=_dense_tasks, batches=_augmented, input_key="image",
        archs=DENSE_ARCHS, batch_size=64, task_names=("segmentation", "depth", "instance"), tasks_in_loader=True,
        problems={"S+D": ("segmentation", "depth"), "S+D+I": ("segmentation", "depth", "instance")},
        protocols={"paper_c": PAPER_C_CITYSCAPES, "paper_c_ladder": PAPER_C_LADDER, "paper_a": PAPER_A_CITYSCAPES},
        unit_images=True,
        fake_batch=_dense_batch(128, 256, 7, False),
        meta=dict(tasks=("segmentation", "depth"), num_classes=7)),
    "nyuv2": Benchmark(
        title="NYUv2",
        load=load_nyuv2, model=_dense, tasks=_dense_tasks, batches=_augmented, input_key="image",
        archs=DENSE_ARCHS, batch_size=8, protocols={"paper_a": PAPER_A_NYUV2}, unit_images=True,
        fake_batch=_dense_batch(288, 384, 13, True),
        meta=dict(tasks=("segmentation", "depth", "normals"), num_classes=13)),
    "celeba": Benchmark(
        title="CelebA",
        load=lambda data_dir=None, **kw: load_celeba(data_dir, **kw),
        model=lambda data, arch="resnet18", tiny=False, dropout=0.0, tasks=None: ResNetHeads(
            len(data.tasks), stages=(1, 1, 1, 1) if tiny else (2, 2, 2, 2), width=2 if tiny else 64),
        tasks=lambda data, names=None: attribute_tasks(data.tasks), batches=dense_batches, input_key="image",
        archs=("resnet18",), batch_size=256, fixed_splits=True, protocols={"paper_a": PAPER_A_CELEBA},
        unit_images=True, fake_batch=_celeba_batch,
        meta=dict(tasks=ATTRIBUTES, num_classes=2)),
    "qm9": Benchmark(
        title="QM9",
        load=lambda data_dir=None, **kw: load_qm9(data_dir, **kw),
        model=lambda data, arch="mpnn", tiny=False, dropout=0.0, tasks=None: MPNN(len(data.tasks), **(
            {"features": 4, "edge_hidden": 4, "steps": 1, "readout_steps": 1} if tiny else {})),
        tasks=lambda data, names=None: regression_tasks(data.tasks, data.std), batches=dense_batches,
        input_key="graph", archs=("mpnn",), batch_size=120, fixed_splits=True, fake_batch=_qm9_batch,
        problems={"11 targets": TARGETS}, protocols={"paper_c": PAPER_C_QM9},
        meta=dict(tasks=TARGETS, num_classes=0)),
}
DEFAULT = next(iter(DATASETS))
"""The embedded default data set (the first entry): Multi-Fashion, built from the Fashion-MNIST files."""


def get(name: str) -> Benchmark:
    """The benchmark ``name``; ``ValueError`` listing the known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {sorted(DATASETS)}")
    return DATASETS[name]


SUBSETS = ("n_train", "n_val", "n_test")


def load_dataset(name: str, data_dir=None, **settings):
    """Data set ``name`` loaded with a study's ``settings``. A loader that draws its own
    subsets (:attr:`Benchmark.draws_subsets`) takes them all; the others get every setting
    but ``n_train``/``n_val``/``n_test`` (and ``seed`` where their splits are fixed) and
    keep the first ``n_*`` examples of each split."""
    bench = get(name)
    if bench.draws_subsets:
        return bench.load(data_dir, **settings)
    sizes = {k[2:]: settings.pop(k) for k in SUBSETS if settings.get(k) is not None}
    for k in SUBSETS:
        settings.pop(k, None)
    if bench.fixed_splits:
        settings.pop("seed", None)
    data = bench.load(data_dir, **settings)
    return dataclasses.replace(data, **{split: getattr(data, split).subset(range(min(n, len(getattr(data, split)))))
                                         for split, n in sizes.items()})


def time_step(name: str, arch: str | None = None, *, tiny: bool = False, batch_size: int | None = None,
              steps: int = 3) -> dict[str, float]:
    """Median seconds of one jitted UPGrad+Adam step and of producing a (fake) batch through
    :func:`jaxmtl.data.prefetch`, compilation excluded."""
    bench = get(name)
    meta = SimpleNamespace(**bench.meta, std=np.ones(len(bench.meta["tasks"])))
    model = bench.model(meta, arch or bench.archs[0], tiny)
    tasks = bench.tasks(meta)
    rng = np.random.default_rng(0)
    b = batch_size or bench.batch_size
    batch = bench.fake_batch(b, rng)
    variables = model.init(jax.random.PRNGKey(0), batch[bench.input_key])
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-3))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key=bench.input_key)
    opt_state = tx.init(variables["params"])
    times, fetch = [], []
    source = prefetch(bench.fake_batch(b, rng) for _ in range(steps + 1))
    for i in range(steps + 1):
        start = time.perf_counter()
        batch = next(source)
        fetch.append(time.perf_counter() - start)
        start = time.perf_counter()
        variables, opt_state, losses = step(variables, opt_state, batch, jax.random.PRNGKey(i))
        jax.block_until_ready(losses)
        times.append(time.perf_counter() - start)
    return {"step_s": float(np.median(times[1:])), "wait_for_batch_s": float(np.median(fetch[1:])),
            "batch_size": b}


def main(argv=None) -> None:
    from experiments.cli import at_least   # cli imports this module

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), nargs="*", default=sorted(DATASETS),
                        help="the data sets to time (default: all)")
    parser.add_argument("--tiny", action="store_true", help="few-channel models")
    parser.add_argument("--batch-size", type=at_least(1), default=None, help="default: the paper's")
    parser.add_argument("--steps", type=at_least(1), default=3, help="timed steps per model (the median is reported)")
    args = parser.parse_args(argv)
    for name in args.dataset:
        for arch in get(name).archs:
            r = time_step(name, arch, tiny=args.tiny, batch_size=args.batch_size, steps=args.steps)
            print(f"{name:14s} {arch:17s} batch {r['batch_size']:4d}  step {r['step_s'] * 1e3:9.1f} ms  "
                  f"waiting for the batch {r['wait_for_batch_s'] * 1e3:7.2f} ms  ({jax.default_backend()})",
                  flush=True)


if __name__ == "__main__":
    main()
