"""Cityscapes (Cordts et al. 2016): 7- or 19-class segmentation, disparity and (opt-in) instance
offsets, the papers' splits.

Two sources:

* ``source="numpy"`` (default): the preprocessed MTAN/LibMTL layout (see
  :mod:`jaxmtl.data.dense`) under ``data_dir`` (or ``$JAXMTL_CITYSCAPES_DIR``)::

      <root>/train/{image,label_7,label_19,depth}/<i>.npy   (2975 examples)
      <root>/val/{image,label_7,label_19,depth}/<i>.npy     (500 examples)

  at 128x256 (MTAN's archive); ``size=(256, 512)`` resizes (use a 256x512 archive
  for the papers' larger setting without upsampling).
* ``source="tfds"``: tfds's ``cityscapes`` builder from the official zips in
  ``manual_dir`` (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip,
  disparity_trainvaltest.zip). Segmentation and disparity live in two configs
  (``semantic_segmentation``, ``stereo_disparity``), joined here by image id.
  Label ids are remapped with :data:`LABEL_TO_19` (the official train ids) or
  :data:`LABEL_TO_7` (the seven categories: flat, construction, object,
  nature, sky, human, vehicle); void ids become -1. The builder declares
  ``disparity_map`` as an 8-bit image but stores the 16-bit PNG it was given, so
  tfds's decoding is skipped and :func:`decode_disparity` reads the 16 bits
  (``d = (p - 1) / 256`` for ``p > 0``, 0 = invalid).

Splits (papers A and C, MTAN): validation = a seeded ``val_fraction`` of the
official training set, test = the official validation set. Tasks (``tasks=``,
default ``("segmentation", "depth")``): ``segmentation`` (``classes`` classes),
``depth`` (disparity; 0 = invalid) and ``instance``.

``instance`` (paper C's third Cityscapes task, after Kendall, Gal & Cipolla 2018):
batch key ``instance`` ``(H, W, 2)`` float32, for each pixel of an object instance
the vector ``(dy, dx)`` from the pixel to its instance's centroid (the mean row
and column of the instance's pixels), **in pixels of the loaded (resized)
image**; ``instance_mask`` ``(H, W)`` bool marks those pixels (offsets are 0
elsewhere and left out of the loss and metric). Instance ids follow Cityscapes'
``gtFine_instanceIds`` convention: ``id >= 1000`` is instance ``id % 1000`` of
label ``id // 1000``; ``id < 1000`` is stuff or a group without instances. Ids
are resized by nearest neighbour and the offsets computed afterwards
(:func:`instance_offsets`); the random scale-and-crop augmentation multiplies
them by its resize factors (:func:`jaxmtl.data.dense.resize_example`). Sources:

* NumPy layout: ``<root>/<split>/instance/<i>.npy``, either instance ids
  ``(H, W)`` (or ``(H, W, 1)``; integer values, Cityscapes' convention) or
  precomputed offsets ``(H, W, 2)`` float ``(dy, dx)`` in pixels of that file,
  NaN on non-instance pixels (rescaled with the image when ``size`` differs).
  MTAN's archive has no such folder.
* tfds: the ``cityscapes`` builder's configs carry no instance ids (only
  ``gtFine_labelIds``), so they are read from the unzipped official ``gtFine``
  folder: ``<gtfine_dir>/{train,val}/<city>/<image id>_gtFine_instanceIds.png``
  (``gtfine_dir`` defaults to ``<manual_dir>/gtFine``).

Requesting ``instance`` where these files are absent raises ``ValueError``
naming what is missing and where it looked.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxmtl.data.checks import DataError, check_shape, data_error
from jaxmtl.data.dense import (DenseDataset, DenseSplit, Resized, find_root, held_out, numbered_files, read_numpy_splits,
                               resize_example, standardise)

ENV_VAR = "JAXMTL_CITYSCAPES_DIR"
DEFAULT_DIR = Path("~/data/cityscapes").expanduser()
SIZES = ((128, 256), (256, 512))
TASKS = ("segmentation", "depth")
"""The default tasks."""
ALL_TASKS = ("segmentation", "depth", "instance")
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"

# official label id -> (train id, category id); 255 / 0 = void
_LABELS = {7: (0, 1), 8: (1, 1), 9: (255, 1), 10: (255, 1), 11: (2, 2), 12: (3, 2), 13: (4, 2),
           14: (255, 2), 15: (255, 2), 16: (255, 2), 17: (5, 3), 18: (255, 3), 19: (6, 3), 20: (7, 3),
           21: (8, 4), 22: (9, 4), 23: (10, 5), 24: (11, 6), 25: (12, 6), 26: (13, 7), 27: (14, 7),
           28: (15, 7), 29: (255, 7), 30: (255, 7), 31: (16, 7), 32: (17, 7), 33: (18, 7)}
LABEL_TO_19 = np.full(256, -1, np.int32)
"""Official label id (0..255) -> train id 0..18, -1 for void/ignored ids."""
LABEL_TO_7 = np.full(256, -1, np.int32)
"""Official label id -> category 0..6 (flat .. vehicle), -1 for void."""
for _id, (_train, _cat) in _LABELS.items():
    LABEL_TO_19[_id] = -1 if _train == 255 else _train
    LABEL_TO_7[_id] = _cat - 1

HOW_TO_GET = (
    "Get Cityscapes with one of:\n"
    "  * the preprocessed NumPy archive of MTAN (github.com/lorenmt/mtan, 'cityscapes' link, 128x256):\n"
    "    unzip it so that <root>/train/image/0.npy and <root>/val/label_7/0.npy exist, and pass\n"
    f"    data_dir=<root> (or set {ENV_VAR});\n"
    "  * the official zips (www.cityscapes-dataset.com, free registration): leftImg8bit_trainvaltest.zip,\n"
    "    gtFine_trainvaltest.zip and disparity_trainvaltest.zip in one folder, then\n"
    "    load_cityscapes(source='tfds', manual_dir=<that folder>)  (tfds prepares them once, ~1 h).\n"
    "See docs/datasets.md."
)


def decode_disparity(png: bytes | np.ndarray) -> np.ndarray:
    """Cityscapes disparity ``(H, W, 1)`` float32 from the 16-bit PNG bytes (or the raw uint16 array)."""
    if isinstance(png, (bytes, bytearray, np.bytes_)):
        from PIL import Image

        raw = np.asarray(Image.open(io.BytesIO(bytes(png))), np.int64)
    else:
        raw = np.asarray(png, np.int64)
    raw = raw.reshape(raw.shape[0], raw.shape[1], -1)[..., :1]
    return np.where(raw > 0, (raw - 1) / 256.0, 0.0).astype(np.float32)


class InstanceUnavailable(ValueError):
    """The instance task was requested, but its source files are missing."""


def instance_offsets(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets (H, W, 2) float32, mask (H, W) bool)`` of an instance-id map ``(H, W)``.

    ``mask`` marks the instance pixels (``id >= 1000``); there ``offsets`` is
    ``(dy, dx)`` = the instance's centroid (mean row, mean column of its pixels)
    minus the pixel's ``(row, column)``, elsewhere 0. Units: pixels of ``ids``.
    """
    ids = np.asarray(ids)
    ids = np.rint(ids.reshape(ids.shape[:2])).astype(np.int64)
    mask = ids >= 1000
    offsets = np.zeros((*ids.shape, 2), np.float32)
    if mask.any():
        _, inverse = np.unique(ids[mask], return_inverse=True)
        rows, cols = np.nonzero(mask)                 # the same (row-major) order as ids[mask]
        count = np.bincount(inverse)
        offsets[rows, cols, 0] = (np.bincount(inverse, rows) / count)[inverse] - rows
        offsets[rows, cols, 1] = (np.bincount(inverse, cols) / count)[inverse] - cols
    return offsets, mask


def read_instance_ids(path: str | os.PathLike) -> np.ndarray:
    """A ``gtFine_instanceIds`` PNG (16-bit) as an int64 ``(H, W)`` array."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img, np.int64).reshape(img.size[1], img.size[0], -1)[..., 0]


def _instance_input(example: dict) -> dict:
    """The NumPy layout's ``instance`` file: ids -> ``instance_ids``; offsets (NaN = none) ->
    ``instance`` (NaN set to 0) and ``instance_mask``."""
    out = dict(example)
    a = np.asarray(out.pop("instance"))
    if a.ndim == 3 and a.shape[0] == 2 and a.shape[-1] != 2:
        a = a.transpose(1, 2, 0)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 1):
        out["instance_ids"] = np.rint(a.reshape(a.shape[:2])).astype(np.int64)
    elif a.ndim == 3 and a.shape[-1] == 2:
        mask = np.all(np.isfinite(a), axis=-1)
        out["instance"] = np.where(mask[..., None], a, 0).astype(np.float32)
        out["instance_mask"] = mask
    else:
        raise ValueError(f"an 'instance' array must be ids (H, W) or offsets (H, W, 2), got shape {a.shape}")
    return out


def _with_offsets(example: dict) -> dict:
    """``instance_ids`` (at the final size) replaced by ``instance`` offsets and ``instance_mask``."""
    if "instance_ids" not in example:
        return example
    out = dict(example)
    out["instance"], out["instance_mask"] = instance_offsets(out.pop("instance_ids"))
    return out


class NumpyExamples(Resized):
    """The NumPy layout's examples standardised, resized to ``size``, instance offsets computed."""

    def __getitem__(self, i):
        ex = self.examples[i]
        if "instance" in ex:
            ex = _instance_input(ex)
        return _with_offsets(resize_example(standardise(ex), self.size))


def check_tfds_record(seg, disparity) -> None:
    """A ``semantic_segmentation`` record holds an RGB image and a label-id map of its size,
    its ``stereo_disparity`` record (if any) a disparity map of that size too; otherwise
    :class:`~jaxmtl.data.checks.DataError` naming the record."""
    where = f"tfds cityscapes record {_id(seg)}"
    image, labels = np.asarray(seg["image_left"]), np.asarray(seg["segmentation_label"])
    if image.ndim != 3 or image.shape[-1] != 3:
        raise data_error(where, "an RGB image (H, W, 3)", f"shape {image.shape}")
    hw = image.shape[:2]
    check_shape(where, labels.shape, [(*hw, 1), hw], "label ids for its image")
    if disparity is not None:
        check_shape(where, decode_disparity(disparity["disparity_map"]).shape, [(*hw, 1)], "disparities for its image")


class TfdsExamples(Sequence):
    """Examples joined from the ``semantic_segmentation`` and ``stereo_disparity`` sources (and,
    for the instance task, the ``gtFine_instanceIds`` PNGs under ``instance_dir``)."""

    def __init__(self, seg, disparity, classes: int, size: tuple[int, int], tasks=TASKS,
                 instance_dir: Path | None = None):
        ids = [_id(seg[i]) for i in range(len(seg))]
        if disparity is not None:
            disp_index = {_id(disparity[i]): i for i in range(len(disparity))}
            self.pairs = [(i, disp_index[k]) for i, k in enumerate(ids) if k in disp_index]
            if not self.pairs:
                raise ValueError("no image id occurs in both tfds cityscapes configs "
                                 "(semantic_segmentation and stereo_disparity)")
        else:
            self.pairs = [(i, None) for i in range(len(seg))]
        self.instance_files = None
        if "instance" in tasks:
            self.instance_files = [instance_dir / k.rsplit("_", 2)[0] / f"{k}{INSTANCE_SUFFIX}"
                                   for k in (ids[i] for i, _ in self.pairs)]
            missing = [f for f in self.instance_files if not f.is_file()]
            if missing:
                raise InstanceUnavailable(
                    f"the instance task needs a gtFine_instanceIds PNG per image: {len(missing)} of "
                    f"{len(self.instance_files)} are missing under {instance_dir}, e.g. {missing[0]}")
        self.seg, self.disparity, self.size, self.tasks = seg, disparity, size, tuple(tasks)
        self.table = LABEL_TO_7 if classes == 7 else LABEL_TO_19
        if self.pairs:
            i, j = self.pairs[0]
            check_tfds_record(seg[i], None if j is None else disparity[j])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k):
        i, j = self.pairs[k]
        ex = self.seg[i]
        example = {"image": np.asarray(ex["image_left"], np.float32) / 255.0}
        if "segmentation" in self.tasks:
            example["segmentation"] = self.table[np.asarray(ex["segmentation_label"])[..., 0]]
        if "depth" in self.tasks:
            example["depth"] = decode_disparity(self.disparity[j]["disparity_map"])
        if self.instance_files is not None:
            example["instance_ids"] = read_instance_ids(self.instance_files[k])
        return _with_offsets(resize_example(example, self.size))


def _id(example) -> str:
    value = example["image_id"]
    return value.decode() if isinstance(value, bytes) else str(value)


def _tfds_splits(manual_dir, data_dir, classes, size, tasks=TASKS, gtfine_dir=None):
    import tensorflow_datasets as tfds

    kwargs = {"download_and_prepare_kwargs": {
        "download_config": tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))}} if manual_dir else {}
    out = {}
    for split, folder in (("train", "train"), ("validation", "val")):
        seg = tfds.data_source("cityscapes/semantic_segmentation", split=split, data_dir=data_dir, **kwargs)
        disp = tfds.data_source("cityscapes/stereo_disparity", split=split, data_dir=data_dir,
                                decoders={"disparity_map": tfds.decode.SkipDecoding(),
                                          "image_left": tfds.decode.SkipDecoding(),
                                          "image_right": tfds.decode.SkipDecoding()},
                                **kwargs) if "depth" in tasks else None
        instance_dir = Path(gtfine_dir) / folder if "instance" in tasks else None
        out[split] = DenseSplit(TfdsExamples(seg, disp, classes, size, tasks, instance_dir))
    return out["train"], out["validation"]


def _no_instance(what: str, where: str) -> InstanceUnavailable:
    return InstanceUnavailable(
        f"the instance task is unavailable: {what} (looked in {where}). It needs Cityscapes' instance ids: "
        "in the NumPy layout <root>/{train,val}/instance/<i>.npy (ids (H, W) or offsets (H, W, 2), which "
        "MTAN's archive lacks); through tfds, whose 'cityscapes' configs carry no instance ids, the unzipped "
        "gtFine_trainvaltest.zip as gtfine_dir=<folder>/gtFine (<gtfine_dir>/{train,val}/<city>/"
        f"<image id>{INSTANCE_SUFFIX}). See docs/datasets.md.")


def _check_tasks(tasks) -> tuple[str, ...]:
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [t for t in tasks if t not in ALL_TASKS]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct names of {ALL_TASKS}, got {tasks}")
    return tasks


def load_cityscapes(data_dir: str | os.PathLike | None = None, *, classes: int = 7,
                    size: tuple[int, int] = (128, 256), val_fraction: float = 0.1, seed: int = 0,
                    source: str = "numpy", manual_dir: str | os.PathLike | None = None,
                    tasks: Sequence[str] = TASKS, gtfine_dir: str | os.PathLike | None = None) -> DenseDataset:
    """Cityscapes as a :class:`DenseDataset` (see the module docstring).

    ``classes``: 7 or 19. ``size``: 128x256 or 256x512. ``tasks``: which of
    ``segmentation``, ``depth``, ``instance`` (in that order of outputs; default
    the first two). For ``source="tfds"``, ``data_dir`` is tfds's data directory,
    ``manual_dir`` the folder of the official zips and ``gtfine_dir`` the
    unzipped ``gtFine`` folder (instance task only; default ``<manual_dir>/gtFine``).
    Raises ``FileNotFoundError`` (what is missing, where, how to get it) when the
    data are absent, ``ValueError`` when ``instance`` is requested without its files,
    and, for the NumPy layout, :class:`~jaxmtl.data.checks.DataError` naming a file
    that fails the up-front checks (:func:`jaxmtl.data.dense.check_numpy_split`: a
    label map not of the image's size, class ids outside ``0 .. classes - 1`` and -1).
    """
    tasks = _check_tasks(tasks)
    if classes not in (7, 19):
        raise ValueError(f"classes must be 7 or 19, got {classes}")
    if tuple(size) not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    if source == "numpy":
        root = find_root(data_dir, ENV_VAR, DEFAULT_DIR)
        fields = {"image": "image", "segmentation": f"label_{classes}", "depth": "depth"}
        fields = {k: v for k, v in fields.items() if k == "image" or k in tasks}
        if "instance" in tasks:
            for split in ("train", "val"):
                directory = root / split / "instance"
                if (root / split / "image").is_dir() and not (directory.is_dir() and numbered_files(directory)):
                    raise _no_instance(f"no {directory}/<i>.npy files", str(root))
            fields["instance"] = "instance"
        splits = read_numpy_splits(root, ("train", "val"), fields, HOW_TO_GET, classes)
        train, test = (DenseSplit(NumpyExamples(s.examples, tuple(size))) for s in splits)
    elif source == "tfds":
        if "instance" in tasks:
            if gtfine_dir is None and manual_dir is None:
                raise _no_instance("no gtfine_dir (and no manual_dir) given", "nowhere")
            gtfine_dir = Path(gtfine_dir or Path(manual_dir) / "gtFine").expanduser()
            missing = [gtfine_dir / f for f in ("train", "val") if not (gtfine_dir / f).is_dir()]
            if missing:
                raise _no_instance(f"no folder {missing[0]}", str(gtfine_dir))
        try:
            train, test = _tfds_splits(manual_dir, data_dir, classes, tuple(size), tasks, gtfine_dir)
        except (InstanceUnavailable, DataError):
            raise
        except Exception as err:  # no zips, failed preparation: say how to get the data
            where = f"manual_dir={manual_dir}" if manual_dir else "no manual_dir given"
            raise FileNotFoundError(f"tfds could not prepare 'cityscapes' ({where}): {err}\n{HOW_TO_GET}") from None
    else:
        raise ValueError(f"source must be 'numpy' or 'tfds', got {source!r}")
    train, val = held_out(train, val_fraction, seed)
    return DenseDataset(train, val, test, tasks, classes)

