"""Cityscapes (Cordts et al. 2016): 7- or 19-class segmentation and disparity, the papers' splits.

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
official training set, test = the official validation set. Tasks:
``segmentation`` (``classes`` classes) and ``depth`` (disparity; 0 = invalid).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxmtl.data.dense import (DenseDataset, DenseSplit, Resized, find_root, held_out, read_numpy_split,
                               resize_example)

ENV_VAR = "JAXMTL_CITYSCAPES_DIR"
DEFAULT_DIR = Path("~/data/cityscapes").expanduser()
SIZES = ((128, 256), (256, 512))
TASKS = ("segmentation", "depth")

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


class TfdsExamples(Sequence):
    """Examples joined from the ``semantic_segmentation`` and ``stereo_disparity`` sources."""

    def __init__(self, seg, disparity, classes: int, size: tuple[int, int]):
        disp_index = {_id(disparity[i]): i for i in range(len(disparity))}
        self.pairs = []
        for i in range(len(seg)):
            j = disp_index.get(_id(seg[i]))
            if j is not None:
                self.pairs.append((i, j))
        if not self.pairs:
            raise ValueError("no image id occurs in both tfds cityscapes configs "
                             "(semantic_segmentation and stereo_disparity)")
        self.seg, self.disparity, self.size = seg, disparity, size
        self.table = LABEL_TO_7 if classes == 7 else LABEL_TO_19

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k):
        i, j = self.pairs[k]
        ex = self.seg[i]
        labels = np.asarray(ex["segmentation_label"])[..., 0]
        example = {"image": np.asarray(ex["image_left"], np.float32) / 255.0,
                   "segmentation": self.table[labels],
                   "depth": decode_disparity(self.disparity[j]["disparity_map"])}
        return resize_example(example, self.size)


def _id(example) -> str:
    value = example["image_id"]
    return value.decode() if isinstance(value, bytes) else str(value)


def _tfds_splits(manual_dir, data_dir, classes, size):
    import tensorflow_datasets as tfds

    kwargs = {"download_and_prepare_kwargs": {
        "download_config": tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))}} if manual_dir else {}
    out = {}
    for split in ("train", "validation"):
        seg = tfds.data_source("cityscapes/semantic_segmentation", split=split, data_dir=data_dir, **kwargs)
        disp = tfds.data_source("cityscapes/stereo_disparity", split=split, data_dir=data_dir,
                                decoders={"disparity_map": tfds.decode.SkipDecoding(),
                                          "image_left": tfds.decode.SkipDecoding(),
                                          "image_right": tfds.decode.SkipDecoding()}, **kwargs)
        out[split] = DenseSplit(TfdsExamples(seg, disp, classes, size))
    return out["train"], out["validation"]


def load_cityscapes(data_dir: str | os.PathLike | None = None, *, classes: int = 7,
                    size: tuple[int, int] = (128, 256), val_fraction: float = 0.1, seed: int = 0,
                    source: str = "numpy", manual_dir: str | os.PathLike | None = None) -> DenseDataset:
    """Cityscapes as a :class:`DenseDataset` (see the module docstring).

    ``classes``: 7 or 19. ``size``: 128x256 or 256x512. For ``source="tfds"``,
    ``data_dir`` is tfds's data directory and ``manual_dir`` the folder of the
    official zips. Raises ``FileNotFoundError`` (what is missing, where, how to
    get it) when the data are absent.
    """
    if classes not in (7, 19):
        raise ValueError(f"classes must be 7 or 19, got {classes}")
    if tuple(size) not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size}")
    if source == "numpy":
        root = find_root(data_dir, ENV_VAR, DEFAULT_DIR)
        fields = {"image": "image", "segmentation": f"label_{classes}", "depth": "depth"}
        train = read_numpy_split(root, "train", fields, HOW_TO_GET)
        test = read_numpy_split(root, "val", fields, HOW_TO_GET)
        train, test = (DenseSplit(Resized(s.examples, tuple(size))) for s in (train, test))
    elif source == "tfds":
        try:
            train, test = _tfds_splits(manual_dir, data_dir, classes, tuple(size))
        except Exception as err:  # no zips, failed preparation: say how to get the data
            where = f"manual_dir={manual_dir}" if manual_dir else "no manual_dir given"
            raise FileNotFoundError(f"tfds could not prepare 'cityscapes' ({where}): {err}\n{HOW_TO_GET}") from None
    else:
        raise ValueError(f"source must be 'numpy' or 'tfds', got {source!r}")
    train, val = held_out(train, val_fraction, seed)
    return DenseDataset(train, val, test, TASKS, classes)

