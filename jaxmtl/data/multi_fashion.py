"""Multi-Fashion: two Fashion-MNIST items overlaid on one 36x36 canvas.

Like Multi-MNIST (Sabour et al. 2017; Sener & Koltun 2018), with Fashion-MNIST
items: item ``a`` is placed near the top-left corner and item ``b`` near the
bottom-right corner (each shifted by up to ``jitter`` pixels towards the centre),
the pixel-wise maximum is kept. Tasks: classify the top-left item (task 0) and
the bottom-right item (task 1), 10 classes each.

Built deterministically from the real IDX files and a seed: the validation set
is carved from the Fashion-MNIST training set (``val_fraction``), each item of
a split is paired with a random partner from the same split.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from jaxmtl.data.fashion_mnist import load_fashion_mnist

CANVAS = 36
ITEM = 28
NUM_CLASSES = 10
TASKS = ("top_left", "bottom_right")


@dataclass(frozen=True)
class Split:
    """``images`` uint8 ``(N, 36, 36, 1)``, ``labels`` int32 ``(N, 2)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class MultiFashion:
    train: Split
    val: Split
    test: Split
    tasks: tuple[str, ...] = TASKS
    num_classes: int = NUM_CLASSES


def overlay(images: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator,
            jitter: int = 4) -> Split:
    """``n`` two-item canvases from ``images`` (uint8 ``(M, 28, 28)``) and their labels."""
    m = len(images)
    if m < 2:
        raise ValueError(f"need at least 2 items to pair, got {m}")
    first = rng.permutation(m)[:n] if n <= m else rng.integers(0, m, n)
    second = (first + rng.integers(1, m, len(first))) % m  # a different item
    shift = rng.integers(0, jitter + 1, (len(first), 4))
    canvas = np.zeros((len(first), CANVAS, CANVAS), np.uint8)
    far = CANVAS - ITEM
    for k, idx in enumerate((first, second)):
        for dy in range(jitter + 1):
            for dx in range(jitter + 1):
                sel = np.nonzero((shift[:, 2 * k] == dy) & (shift[:, 2 * k + 1] == dx))[0]
                if not len(sel):
                    continue
                y, x = (dy, dx) if k == 0 else (far - dy, far - dx)
                region = canvas[sel, y:y + ITEM, x:x + ITEM]
                canvas[sel, y:y + ITEM, x:x + ITEM] = np.maximum(region, images[idx[sel]])
    y = np.stack([labels[first], labels[second]], axis=1).astype(np.int32)
    return Split(canvas[..., None], y)


def make_multi_fashion(data_dir: str | os.PathLike | None = None, *, seed: int = 0,
                       n_train: int | None = None, n_val: int | None = None,
                       n_test: int | None = None, val_fraction: float = 1 / 6,
                       jitter: int = 4) -> MultiFashion:
    """Builds Multi-Fashion from the Fashion-MNIST IDX files (see the module docstring).

    ``n_train``/``n_val``/``n_test`` subsample each split (default: one canvas per
    item of the split: 50k/10k/10k with the default ``val_fraction``).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    raw = load_fashion_mnist(data_dir)
    rng = np.random.default_rng(seed)
    images, labels = raw["train"]
    order = rng.permutation(len(images))
    n_v = int(round(len(images) * val_fraction))
    val_idx, train_idx = order[:n_v], order[n_v:]
    test_images, test_labels = raw["test"]
    splits = {}
    for name, (im, lab, n) in {
        "train": (images[train_idx], labels[train_idx], n_train),
        "val": (images[val_idx], labels[val_idx], n_val),
        "test": (test_images, test_labels, n_test),
    }.items():
        split_rng = np.random.default_rng([seed, len(splits)])
        splits[name] = overlay(im, lab, len(im) if n is None else n, split_rng, jitter)
    return MultiFashion(**splits)


def batches(split: Split, batch_size: int, rng: np.random.Generator | None = None,
            drop_last: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Yields ``{"image": f32 (B, 36, 36, 1) in [0, 1], "labels": i32 (B, 2)}``.

    Shuffled when ``rng`` is given; the last partial batch is dropped when
    ``drop_last`` (training) and kept otherwise (evaluation).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(split)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield {"image": split.images[idx].astype(np.float32) / 255.0, "labels": split.labels[idx]}
