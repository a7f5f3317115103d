"""Paper C's Multi-MNIST layout (Gama & Grassi 2025), from MNIST or Fashion-MNIST IDX files.

Each example puts two items on a 36x36 canvas, the *left* one at rows/cols
``[0:28]`` and the *right* one at ``[6:34]`` (pixel-wise maximum where they
overlap), and resizes the canvas to 28x28 by nearest-neighbour sampling. The
partner of every item is another random item of the same split. Validation is
the last 10k images of the training set (paper C), the test set is the
official one.

Tasks (``TASKS``): classify the left item (``CL``), classify the right item
(``CR``), reconstruct the left item (``RL``), reconstruct the right item
(``RR``); paper C trains them in the pairs of ``PAIRS``. As paper C's official
loader (``supervised_experiments/loaders/multi_mnist_loader.py``,
``datasets.py``): a reconstruction target is the *original* 28x28 item
(unshifted, unresized), and the batches normalise the canvas and the targets
alike with MNIST's mean and standard deviation (:data:`MEAN`, :data:`STD`), so
the reconstruction loss and metric are on that scale.

Departures from the official loader: each item's partner is a random *other*
item of its split drawn from ``seed`` (the official code draws with replacement,
fixed by index files in its repository); the items default to Fashion-MNIST
(offline here).

Sources: ``source='fashion_mnist'`` (default; offline here, found as in
:func:`jaxmtl.data.load_fashion_mnist`) or ``source='mnist'``, the paper's own
digits, read from ``data_dir`` (the four MNIST IDX files, gzipped or not).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from jaxmtl.data.checks import DataError
from jaxmtl.data.fashion_mnist import has_idx_files, load_fashion_mnist, read_idx_dataset

CANVAS, ITEM, OUT = 36, 28, 28
OFFSETS = (0, 6)                     # top-left corner of the left and right items
MEAN, STD = 0.1307, 0.3081           # MNIST's pixel mean and standard deviation (paper C's normalisation)
TASKS = ("CL", "CR", "RL", "RR")
PAIRS = {"CL+RR": ("CL", "RR"), "CL+CR": ("CL", "CR"), "RL+RR": ("RL", "RR")}
VAL_SIZE = 10_000
SOURCES = ("fashion_mnist", "mnist")
MNIST_HOW_TO = ("MNIST IDX files not found in {where}: download train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
                "(Yann LeCun's MNIST page, or any mirror) into one directory and pass it as "
                "--data-dir / data_dir; or use source='fashion_mnist', which is available offline.")


@dataclass(frozen=True)
class PairSplit:
    """``images`` uint8 ``(N, 28, 28, 1)``; ``labels`` int32 ``(N, 2)`` (left, right);
    ``items`` uint8 ``(N, 2, 28, 28)``, the original left and right items (reconstruction targets)."""

    images: np.ndarray
    labels: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class MultiMNIST:
    train: PairSplit
    val: PairSplit
    test: PairSplit
    source: str


def _nearest(canvas: np.ndarray) -> np.ndarray:
    """``(..., 36, 36)`` to ``(..., 28, 28)`` by nearest-neighbour sampling (pixel centres)."""
    idx = np.floor((np.arange(OUT) + 0.5) * CANVAS / OUT).astype(int)
    return canvas[..., idx[:, None], idx[None, :]]


def compose(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> PairSplit:
    """One example per item of ``images`` (uint8 ``(M, 28, 28)``), paired with a random other item."""
    m = len(images)
    if m < 2:
        raise ValueError(f"need at least 2 items to pair, got {m}")
    left = np.arange(m)
    right = (left + rng.integers(1, m, m)) % m          # a different item
    alone = np.zeros((m, 2, CANVAS, CANVAS), np.uint8)
    for k, (idx, off) in enumerate(zip((left, right), OFFSETS)):
        alone[:, k, off:off + ITEM, off:off + ITEM] = images[idx]
    canvas = alone.max(axis=1)
    return PairSplit(_nearest(canvas)[..., None], np.stack([labels[left], labels[right]], 1).astype(np.int32),
                     np.stack([images[left], images[right]], 1))


def normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 ``(x / 255 - MEAN) / STD`` (paper C's ``Normalize((0.1307,), (0.3081,))``)."""
    return (pixels.astype(np.float32) / 255.0 - MEAN) / STD


def make_multi_mnist(data_dir: str | os.PathLike | None = None, *, source: str = "fashion_mnist",
                     seed: int = 0, n_train: int | None = None, n_val: int | None = None,
                     n_test: int | None = None) -> MultiMNIST:
    """Builds the data set (see the module docstring); ``n_*`` keep the first examples of a split."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "mnist":
        if data_dir is None or not has_idx_files(data_dir):
            raise FileNotFoundError(MNIST_HOW_TO.format(where=data_dir or "(no data_dir given)"))
        raw = read_idx_dataset(data_dir)
    else:
        raw = load_fashion_mnist(data_dir)
    images, labels = raw["train"]
    if len(images) <= VAL_SIZE:
        raise DataError(f"{len(images)} training images: the last {VAL_SIZE} are the validation set")
    parts = {"train": (images[:-VAL_SIZE], labels[:-VAL_SIZE], n_train),
             "val": (images[-VAL_SIZE:], labels[-VAL_SIZE:], n_val),
             "test": (*raw["test"], n_test)}
    splits = {}
    for k, (name, (im, lab, n)) in enumerate(parts.items()):
        split = compose(im, lab, np.random.default_rng([seed, k]))
        splits[name] = split if n is None else PairSplit(split.images[:n], split.labels[:n], split.items[:n])
    return MultiMNIST(**splits, source=source)


def pair_batches(split: PairSplit, tasks: tuple[str, ...], batch_size: int,
                 rng: np.random.Generator | None = None, drop_last: bool = True) -> Iterator[dict]:
    """Yields ``{"image": f32 (B, 28, 28, 1), "labels": i32 (B, 2), "items": f32 (B, 2, 28, 28)}``,
    images and items normalised as ``(x / 255 - MEAN) / STD`` (``items`` only when a
    reconstruction task is asked for)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; Multi-MNIST's are {TASKS}")
    recon = any(t.startswith("R") for t in tasks)
    n = len(split)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        batch = {"image": normalise(split.images[idx]), "labels": split.labels[idx]}
        if recon:
            batch["items"] = normalise(split.items[idx])
        yield batch
