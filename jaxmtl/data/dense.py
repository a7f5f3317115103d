"""Dense-prediction data (Cityscapes, NYUv2): the per-file NumPy layout, random scale-and-crop
augmentation, batches.

The layout of MTAN (Liu et al. 2019) and LibMTL, shared by the preprocessed
Cityscapes and NYUv2 archives those projects distribute::

    <root>/<split>/<field>/<i>.npy        i = 0 .. N-1, one example per file

with ``field`` ``image`` (``(H, W, 3)`` float in [0, 1]; channel-first files are
transposed), ``label`` / ``label_7`` / ``label_19`` (``(H, W)``, class ids,
-1 unlabelled), ``depth`` (``(H, W)`` or ``(H, W, 1)``, 0 where missing) and
``normal`` (``(H, W, 3)``, zeros where missing); Cityscapes may add ``instance``
(see :mod:`jaxmtl.data.cityscapes`).

A :class:`DenseSplit` is a random-access sequence of examples (files of this
layout, or records of a tfds data source), read when a batch needs them.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

SCALES = (1.0, 1.2, 1.5)
"""Random-scale factors of MTAN/Auto-Lambda's ``RandomScaleCrop``."""


class NpyExamples(Sequence):
    """Example ``i`` is ``{key: np.load(files[key][i])}`` (the NumPy layout, read lazily)."""

    def __init__(self, files: dict[str, list[Path]]):
        self.files = files

    def __len__(self) -> int:
        return len(next(iter(self.files.values())))

    def __getitem__(self, i):
        return {k: np.load(v[i]) for k, v in self.files.items()}


class Subset(Sequence):
    """``examples[indices[i]]`` as item ``i``."""

    def __init__(self, examples: Sequence, indices: Sequence[int]):
        self.examples, self.indices = examples, np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.examples[int(self.indices[i])]


class Resized(Sequence):
    """``examples[i]`` standardised (:func:`standardise`) and resized to ``size``."""

    def __init__(self, examples: Sequence, size: tuple[int, int]):
        self.examples, self.size = examples, size

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):
        return resize_example(standardise(self.examples[i]), self.size)


@dataclass(frozen=True)
class DenseSplit:
    """A random-access sequence of examples (pytrees of arrays: ``{"image", "segmentation",
    "depth", "normals"}`` for the dense sets), read when a batch needs them. CelebA and
    QM9 use it for their tfds sources too."""

    examples: Sequence

    def __len__(self) -> int:
        return len(self.examples)

    def example(self, i: int) -> dict[str, np.ndarray]:
        return self.examples[i]

    def subset(self, indices: Sequence[int]) -> "DenseSplit":
        return DenseSplit(Subset(self.examples, indices))


@dataclass(frozen=True)
class DenseDataset:
    """Train / held-out validation / test splits and the task names of a dense data set."""

    train: DenseSplit
    val: DenseSplit
    test: DenseSplit
    tasks: tuple[str, ...]
    num_classes: int


def numbered_files(directory: Path) -> list[Path]:
    """``directory``'s ``<i>.npy`` files in numeric order; ``ValueError`` if the numbers have gaps."""
    found = {int(m.group(1)): p for p in directory.glob("*.npy") if (m := re.fullmatch(r"(\d+)\.npy", p.name))}
    if sorted(found) != list(range(len(found))):
        raise ValueError(f"{directory}: expected files 0.npy .. {len(found) - 1}.npy without gaps")
    return [found[i] for i in range(len(found))]


def read_numpy_split(root: Path, split: str, fields: dict[str, str], how_to_get: str) -> DenseSplit:
    """The ``<root>/<split>/<field>/<i>.npy`` files of ``fields`` (batch key -> folder name).

    Raises ``FileNotFoundError`` naming the missing folder and ``how_to_get``, and
    ``ValueError`` when the folders hold different numbers of files.
    """
    columns = {}
    for key, folder in fields.items():
        directory = root / split / folder
        files = numbered_files(directory) if directory.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no {directory}/<i>.npy files ({key!r} of the {split!r} split).\n{how_to_get}")
        columns[key] = files
    sizes = {k: len(v) for k, v in columns.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{root / split}: the fields hold different numbers of files: {sizes}")
    return DenseSplit(NpyExamples(columns))


def find_root(data_dir: str | os.PathLike | None, env_var: str, default: Path) -> Path:
    """``data_dir``, else ``$env_var``, else ``default``."""
    return Path(data_dir or os.environ.get(env_var) or default)


def held_out(train: DenseSplit, val_fraction: float, seed: int) -> tuple[DenseSplit, DenseSplit]:
    """A seeded random ``val_fraction`` of ``train`` as validation, the rest as training data."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = max(1, int(round(len(train) * val_fraction)))
    if n_val >= len(train):
        raise ValueError(f"{len(train)} training examples are too few to hold out {val_fraction:g} of them")
    return train.subset(np.sort(order[n_val:])), train.subset(np.sort(order[:n_val]))


def standardise(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Channel-last float32 image, int32 segmentation, ``(H, W, 1)`` float32 depth, float32 normals."""
    out = dict(example)
    image = np.asarray(out["image"], np.float32)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    out["image"] = image
    if "segmentation" in out:
        out["segmentation"] = np.rint(np.asarray(out["segmentation"], np.float32)).reshape(image.shape[:2]).astype(np.int32)
    if "depth" in out:
        out["depth"] = np.asarray(out["depth"], np.float32).reshape(*image.shape[:2], 1)
    if "instance" in out:
        out["instance"] = np.asarray(out["instance"], np.float32).reshape(*image.shape[:2], 2)
    if "instance_mask" in out:
        out["instance_mask"] = np.asarray(out["instance_mask"], bool).reshape(image.shape[:2])
    if "normals" in out:
        normals = np.asarray(out["normals"], np.float32)
        out["normals"] = normals.transpose(1, 2, 0) if normals.shape[0] == 3 and normals.shape[-1] != 3 else normals
    return out


def resize_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the two leading axes (labels, depth)."""
    h, w = x.shape[:2]
    rows = np.minimum((np.arange(size[0]) + 0.5) * h / size[0], h - 1).astype(int)
    cols = np.minimum((np.arange(size[1]) + 0.5) * w / size[1], w - 1).astype(int)
    return x[rows][:, cols]


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (half-pixel centres) of ``(H, W, C)`` float images."""
    def axis(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), (pos - lo).astype(np.float32)

    r0, r1, wr = axis(x.shape[0], size[0])
    c0, c1, wc = axis(x.shape[1], size[1])
    rows = x[r0] * (1 - wr)[:, None, None] + x[r1] * wr[:, None, None]
    return rows[:, c0] * (1 - wc)[None, :, None] + rows[:, c1] * wc[None, :, None]


def resize_example(example: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """``example`` at spatial ``size``: bilinear image, nearest labels/depth/normals/instance ids
    and masks; instance offsets (``instance``, ``(H, W, 2)`` ``(dy, dx)`` in pixels) nearest and
    multiplied by the resize factors ``(size[0] / H, size[1] / W)``, so they stay in pixels of
    the resized image."""
    h, w = example["image"].shape[:2]
    if (h, w) == tuple(size):
        return example
    out = {k: resize_bilinear(v, size) if k == "image" else resize_nearest(v, size) if v.ndim >= 2 else v
           for k, v in example.items()}
    if "instance" in out:
        out["instance"] = out["instance"] * np.asarray([size[0] / h, size[1] / w], np.float32)
    return out


def random_scale_crop(example: dict[str, np.ndarray], rng: np.random.Generator,
                      scales: Sequence[float] = SCALES) -> dict[str, np.ndarray]:
    """MTAN/Auto-Lambda's augmentation: pick ``s`` in ``scales``, crop a random ``H/s x W/s``
    window, resize it back to ``H x W``; depth is divided by ``s`` (the scene looks ``s``
    times closer), instance offsets are multiplied by the resize factors (about ``s``; see
    :func:`resize_example`: the crop itself moves no offset), labels, masks and normals are
    unchanged."""
    s = float(rng.choice(np.asarray(scales)))
    h, w = example["image"].shape[:2]
    ch, cw = int(h / s), int(w / s)
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = {k: v[top:top + ch, left:left + cw] if v.ndim >= 2 else v for k, v in example.items()}
    out = resize_example(crop, (h, w))
    if "depth" in out:
        out["depth"] = out["depth"] / s
    return out


def dense_batches(split: DenseSplit, batch_size: int, rng: np.random.Generator | None = None,
                  drop_last: bool = True, augment: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """Yields the examples of ``split`` stacked into batches: for the dense sets ``{"image":
    f32 (B, H, W, 3), "segmentation": i32 (B, H, W), "depth": f32 (B, H, W, 1), "normals":
    f32 (B, H, W, 3)}`` (the keys ``split`` has); any pytree of arrays is stacked.

    Shuffled when ``rng`` is given (and augmented with :func:`random_scale_crop`
    when ``augment``); the last partial batch is dropped when ``drop_last``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if augment and rng is None:
        raise ValueError("augment needs an rng")
    n = len(split)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        examples = [split.example(int(i)) for i in order[start:start + batch_size]]
        if augment:
            examples = [random_scale_crop(ex, rng) for ex in examples]
        yield jax.tree.map(lambda *xs: np.stack(xs), *examples)
