"""The benchmarks a study can train on: ``name -> Benchmark(load, model, tasks, batches)``.

:func:`load_dataset` loads one with a study's data settings (``n_train`` etc. keep
the first examples of a split);
:func:`experiments.common.train_run` trains any of them (``RunSpec.dataset``).

Each entry pairs a loader (:mod:`jaxmtl.data`), the papers' model for it
(:mod:`jaxmtl.models`; ``tiny=True`` gives a few-channel version for tests and
smoke runs) and the data set's tasks (:class:`jaxmtl.data.Task`: loss, metrics,
direction), so the generic steps :func:`jaxmtl.training.make_task_train_step`
and :func:`~jaxmtl.training.make_task_eval_step` run any of them::

    bench = DATASETS["nyuv2"]
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
from typing import Any, Callable

import jax
import numpy as np
import optax

import jaxmtl
from jaxmtl.data import (ATTRIBUTES, TARGETS, Task, attribute_tasks, batches, classification_tasks, dense_batches,
                         depth_task, instance_task, load_celeba, load_cityscapes, load_nyuv2, load_qm9,
                         make_multi_fashion, make_multi_mnist, normals_task, pair_batches, prefetch,
                         regression_tasks, segmentation_task)
from jaxmtl.models import MPNN, DeepLabV3Plus, MultiLeNet, ResNetHeads, SegNet, shared_mask
from jaxmtl.training import make_task_train_step


@dataclass(frozen=True)
class Benchmark:
    """``load(data_dir, **kw)`` -> data with ``train``/``val``/``test``; ``model(data, arch, tiny)``;
    ``tasks(data)``; ``batches(split, batch_size, rng=None, drop_last=True)``; the batch key of
    the model input; the model architectures (first = default); the paper's batch size."""

    load: Callable[..., Any]
    model: Callable[..., Any]
    tasks: Callable[[Any], tuple[Task, ...]]
    batches: Callable[..., Any]
    input_key: str
    archs: tuple[str, ...]
    batch_size: int
    eval_batch_size: int | None = None
    """Batch size of the evaluation passes (``None``: the run's training batch size)."""


def _dense_model(channels: tuple[int, ...], arch: str, tiny: bool):
    if arch == "segnet":
        return SegNet(channels, filters=(2, 2, 4, 4, 4) if tiny else (64, 128, 256, 512, 512))
    if arch in ("deeplab_resnet18", "deeplab_resnet50"):
        backbone = arch.split("_")[1]
        if tiny:
            return DeepLabV3Plus(channels, backbone, width=2, aspp_channels=4, low_channels=2)
        return DeepLabV3Plus(channels, backbone)
    raise ValueError(f"unknown dense model {arch!r}: use segnet, deeplab_resnet18 or deeplab_resnet50")


def _dense_tasks(data) -> tuple[Task, ...]:
    makers = {"segmentation": segmentation_task, "depth": depth_task, "normals": normals_task,
              "instance": instance_task}
    return tuple(makers[t]() for t in data.tasks)


def _dense_channels(data) -> tuple[int, ...]:
    return tuple({"segmentation": data.num_classes, "depth": 1, "normals": 3, "instance": 2}[t] for t in data.tasks)


def _augmented(split, batch_size, rng=None, drop_last=True):
    """Random scale-and-crop on training batches (a shuffling ``rng``), as MTAN/LibMTL."""
    return dense_batches(split, batch_size, rng, drop_last, augment=rng is not None)


DENSE_ARCHS = ("segnet", "deeplab_resnet18", "deeplab_resnet50")
MULTI_MNIST_TASKS = ("CL", "CR")


def _multi_mnist(data_dir=None, **kw):
    """Paper C's Multi-MNIST from the four MNIST IDX files in ``data_dir`` (``source='mnist'``
    unless given), its two classification tasks."""
    return make_multi_mnist(data_dir, **{"source": "mnist", **kw})


def _pair_batches(split, batch_size, rng=None, drop_last=True):
    return pair_batches(split, MULTI_MNIST_TASKS, batch_size, rng, drop_last)

DATASETS: dict[str, Benchmark] = {
    "multi_fashion": Benchmark(
        load=lambda data_dir=None, **kw: make_multi_fashion(data_dir, **kw),
        model=lambda data, arch="multilenet", tiny=False: MultiLeNet(len(data.tasks), data.num_classes),
        tasks=lambda data: classification_tasks(data.tasks), batches=batches, input_key="image",
        archs=("multilenet",), batch_size=256, eval_batch_size=512),
    "multi_mnist": Benchmark(
        load=_multi_mnist, model=lambda data, arch="multilenet", tiny=False: MultiLeNet(2, 10),
        tasks=lambda data: classification_tasks(MULTI_MNIST_TASKS), batches=_pair_batches, input_key="image",
        archs=("multilenet",), batch_size=256, eval_batch_size=512),
    "cityscapes": Benchmark(
        load=load_cityscapes, model=lambda data, arch="segnet", tiny=False: _dense_model(_dense_channels(data), arch, tiny),
        tasks=_dense_tasks, batches=_augmented, input_key="image", archs=DENSE_ARCHS, batch_size=64),
    "nyuv2": Benchmark(
        load=load_nyuv2, model=lambda data, arch="segnet", tiny=False: _dense_model(_dense_channels(data), arch, tiny),
        tasks=_dense_tasks, batches=_augmented, input_key="image", archs=DENSE_ARCHS, batch_size=8),
    "celeba": Benchmark(
        load=lambda data_dir=None, **kw: load_celeba(data_dir, **kw),
        model=lambda data, arch="resnet18", tiny=False: ResNetHeads(
            len(data.tasks), stages=(1, 1, 1, 1) if tiny else (2, 2, 2, 2), width=2 if tiny else 64),
        tasks=lambda data: attribute_tasks(data.tasks), batches=dense_batches, input_key="image",
        archs=("resnet18",), batch_size=256),
    "qm9": Benchmark(
        load=lambda data_dir=None, **kw: load_qm9(data_dir, **kw),
        model=lambda data, arch="mpnn", tiny=False: MPNN(len(data.tasks), **(
            {"features": 4, "edge_hidden": 4, "steps": 1, "readout_steps": 1} if tiny else {})),
        tasks=lambda data: regression_tasks(data.tasks, data.std), batches=dense_batches, input_key="graph",
        archs=("mpnn",), batch_size=120),
}


def get(name: str) -> Benchmark:
    """The benchmark ``name``; ``ValueError`` listing the known ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; use one of {sorted(DATASETS)}")
    return DATASETS[name]


SUBSETS = ("n_train", "n_val", "n_test")


def load_dataset(name: str, data_dir=None, **settings):
    """Data set ``name`` loaded with a study's ``settings``: Multi-Fashion and Multi-MNIST
    take them all (``n_*`` draw that many examples); the others pass every setting but
    ``n_train``/``n_val``/``n_test`` to their loader and keep the first ``n_*`` examples
    of each split (``seed`` only where the loader has one)."""
    bench = get(name)
    if name in ("multi_fashion", "multi_mnist"):
        return bench.load(data_dir, **settings)
    sizes = {k[2:]: settings.pop(k) for k in SUBSETS if settings.get(k) is not None}
    for k in SUBSETS:
        settings.pop(k, None)
    if name in ("celeba", "qm9"):
        settings.pop("seed", None)   # their splits are fixed
    data = bench.load(data_dir, **settings)
    return dataclasses.replace(data, **{split: getattr(data, split).subset(range(min(n, len(getattr(data, split)))))
                                         for split, n in sizes.items()})


def fake_batch(name: str, batch_size: int, rng: np.random.Generator) -> dict:
    """A random batch with the paper's shapes for ``name`` (timing only)."""
    if name in ("multi_fashion", "multi_mnist"):
        side = 36 if name == "multi_fashion" else 28
        return {"image": rng.random((batch_size, side, side, 1), np.float32),
                "labels": rng.integers(0, 10, (batch_size, 2)).astype(np.int32)}
    if name in ("cityscapes", "nyuv2"):
        h, w, c = (128, 256, 7) if name == "cityscapes" else (288, 384, 13)
        out = {"image": rng.random((batch_size, h, w, 3), np.float32),
               "segmentation": rng.integers(-1, c, (batch_size, h, w)).astype(np.int32),
               "depth": rng.random((batch_size, h, w, 1), np.float32)}
        if name == "nyuv2":
            out["normals"] = rng.normal(size=(batch_size, h, w, 3)).astype(np.float32)
        return out
    if name == "celeba":
        return {"image": rng.random((batch_size, 64, 64, 3), np.float32),
                "attributes": rng.integers(0, 2, (batch_size, 40)).astype(bool)}
    from jaxmtl.data.qm9 import molecule_graph

    graphs = [molecule_graph(rng.choice([1, 6, 7, 8], 29), rng.normal(size=(29, 3)) * 2, int(rng.integers(5, 29)))
              for _ in range(batch_size)]
    return {"graph": jax.tree.map(lambda *x: np.stack(x), *graphs),
            "targets": rng.normal(size=(batch_size, 11)).astype(np.float32)}


class _Meta:
    """What a model factory and the task makers read off a loaded data set."""

    def __init__(self, name: str):
        self.tasks = {"multi_fashion": ("top_left", "bottom_right"), "multi_mnist": MULTI_MNIST_TASKS,
                      "cityscapes": ("segmentation", "depth"),
                      "nyuv2": ("segmentation", "depth", "normals"), "celeba": ATTRIBUTES, "qm9": TARGETS}[name]
        self.num_classes = {"multi_fashion": 10, "multi_mnist": 10, "cityscapes": 7, "nyuv2": 13, "celeba": 2,
                            "qm9": 0}[name]
        self.std = np.ones(len(self.tasks))


def time_step(name: str, arch: str | None = None, *, tiny: bool = False, batch_size: int | None = None,
              steps: int = 3) -> dict[str, float]:
    """Median seconds of one jitted UPGrad+Adam step and of producing a (fake) batch through
    :func:`jaxmtl.data.prefetch`, compilation excluded."""
    bench = get(name)
    meta = _Meta(name)
    model = bench.model(meta, arch or bench.archs[0], tiny)
    tasks = bench.tasks(meta)
    rng = np.random.default_rng(0)
    b = batch_size or bench.batch_size
    batch = fake_batch(name, b, rng)
    variables = model.init(jax.random.PRNGKey(0), batch[bench.input_key])
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), shared_mask), optax.adam(1e-3))
    step = make_task_train_step(model.apply, tx, tasks, shared=shared_mask, input_key=bench.input_key)
    opt_state = tx.init(variables["params"])
    times, fetch = [], []
    source = prefetch(fake_batch(name, b, rng) for _ in range(steps + 1))
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), nargs="*", default=sorted(DATASETS))
    parser.add_argument("--tiny", action="store_true", help="few-channel models")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the paper's")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    for name in args.dataset:
        for arch in get(name).archs:
            r = time_step(name, arch, tiny=args.tiny, batch_size=args.batch_size, steps=args.steps)
            print(f"{name:14s} {arch:17s} batch {r['batch_size']:4d}  step {r['step_s'] * 1e3:9.1f} ms  "
                  f"waiting for the batch {r['wait_for_batch_s'] * 1e3:7.2f} ms  ({jax.default_backend()})",
                  flush=True)


if __name__ == "__main__":
    main()
