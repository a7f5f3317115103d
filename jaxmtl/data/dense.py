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

from jaxmtl.data.checks import DataError, check_class_ids, check_range, check_shape, data_error, missing_list

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
    """``directory``'s ``<i>.npy`` files in numeric order; ``FileNotFoundError`` naming the
    missing numbers when they have gaps."""
    found = {int(m.group(1)): p for p in directory.glob("*.npy") if (m := re.fullmatch(r"(\d+)\.npy", p.name))}
    gaps = sorted(set(range(max(found, default=-1) + 1)) - set(found))
    if gaps:
        raise FileNotFoundError(missing_list(_names(gaps), directory))
    return [found[i] for i in range(len(found))]


def _names(numbers) -> list[str]:
    """``<i>.npy`` names, a long run of them shortened to its ends."""
    names = [f"{i}.npy" for i in numbers]
    return names if len(names) <= 6 else [*names[:3], f"... ({len(names) - 6} more)", *names[-3:]]


LAYOUTS = {
    "image": lambda h, w: [(h, w, 3), (3, h, w)],
    "segmentation": lambda h, w: [(h, w), (h, w, 1)],
    "depth": lambda h, w: [(h, w), (h, w, 1)],
    "normals": lambda h, w: [(h, w, 3), (3, h, w)],
    "instance": lambda h, w: [(h, w), (h, w, 1), (h, w, 2), (2, h, w)],
}
"""The shapes a field's file may have in an example whose image is ``H x W`` (batch key -> shapes)."""
RANGES = {"image": (0.0, 1.0, "pixel values"), "depth": (0.0, np.inf, "depths"),
          "normals": (-1.001, 1.001, "normal components")}
"""The value ranges of the fields checked in their first and last files."""


def _header(path: Path) -> np.ndarray:
    """``path`` mapped, not read (its shape and dtype); :class:`DataError` when it is no ``.npy`` array."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise data_error(path, "a NumPy .npy array", f"{type(err).__name__}: {err}") from None


def check_numpy_split(columns: dict[str, list[Path]], classes: int | None) -> None:
    """Checks the files of a split up front: every file an array of a shape of :data:`LAYOUTS`
    for its example's image size, ``segmentation`` files (all of them) class ids ``0 ..
    classes - 1`` or -1, the first and last files of the fields of :data:`RANGES` in range.
    Raises :class:`~jaxmtl.data.checks.DataError` naming the first file that fails."""
    for i, image in enumerate(columns["image"]):
        shape = _header(image).shape
        channels_first = len(shape) == 3 and shape[0] == 3 and shape[-1] != 3
        h, w = (shape[1:] if channels_first else shape[:2]) if len(shape) == 3 else (None, None)
        check_shape(image, shape, [(h, w, 3), (3, h, w)] if h else [("H", "W", 3)], "an image")
        for key, files in columns.items():
            if key != "image":
                check_shape(files[i], _header(files[i]).shape, LAYOUTS[key](h, w), f"{key} for the image {image}")
    for key, files in columns.items():
        if key == "segmentation" and classes is not None:
            for f in files:
                check_class_ids(f, np.load(f), classes, ignore=-1)
        elif key in RANGES:
            for f in {files[0], files[-1]}:
                check_range(f, np.load(f), *RANGES[key])


def read_numpy_splits(root: Path, splits: Sequence[str], fields: dict[str, str], how_to_get: str,
                      classes: int | None = None) -> list[DenseSplit]:
    """The ``<root>/<split>/<field>/<i>.npy`` files of ``fields`` (batch key -> folder name)
    for each of ``splits``, checked up front (:func:`check_numpy_split`).

    Raises ``FileNotFoundError`` with ``how_to_get`` when none of the folders is there,
    naming just the missing folders (or files: a field with fewer files than
    another) when some are, and :class:`~jaxmtl.data.checks.DataError` for a file
    that fails its checks.
    """
    folders = {(split, key): root / split / folder for split in splits for key, folder in fields.items()}
    missing = [str(d.relative_to(root)) + "/" for d in folders.values() if not (d.is_dir() and any(d.glob("*.npy")))]
    if len(missing) == len(folders):
        raise FileNotFoundError(f"no <i>.npy files in {root / missing[0]} nor in the data set's other "
                                f"folders.\n{how_to_get}")
    if missing:
        raise FileNotFoundError(missing_list(missing, root))
    out = []
    for split in splits:
        columns = {key: numbered_files(folders[split, key]) for key in fields}
        n = max(len(files) for files in columns.values())
        short = [missing_list(_names(range(len(files), n)), folders[split, key])
                 for key, files in columns.items() if len(files) < n]
        if short:
            raise FileNotFoundError("; ".join(short))
        check_numpy_split(columns, classes)
        out.append(DenseSplit(NpyExamples(columns)))
    return out


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
        raise DataError(f"{len(train)} training examples are too few to hold out {val_fraction:g} of them")
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
