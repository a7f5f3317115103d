"""NYUv2 (Silberman et al. 2012): 13-class segmentation, depth and surface normals at 288x384.

tfds's ``nyu_depth_v2`` has depth only, so this reads the preprocessed NumPy
layout of MTAN (Liu et al. 2019) / LibMTL (see :mod:`jaxmtl.data.dense`) under
``data_dir`` (or ``$JAXMTL_NYUV2_DIR``)::

    <root>/train/{image,label,depth,normal}/<i>.npy   (795 examples)
    <root>/val/{image,label,depth,normal}/<i>.npy     (654 examples, the test set)

Splits: validation = a seeded ``val_fraction`` of the 795 training images, test =
the 654. Tasks: ``segmentation`` (13 classes, -1 unlabelled), ``depth`` (0 =
missing) and ``normals`` (zeros = missing).
"""
from __future__ import annotations

import os
from pathlib import Path

from jaxmtl.data.dense import DenseDataset, DenseSplit, Resized, find_root, held_out, read_numpy_splits

ENV_VAR = "JAXMTL_NYUV2_DIR"
DEFAULT_DIR = Path("~/data/nyuv2").expanduser()
SIZE = (288, 384)
NUM_CLASSES = 13
TASKS = ("segmentation", "depth", "normals")
HOW_TO_GET = (
    "Get NYUv2 as the preprocessed NumPy archive of MTAN (github.com/lorenmt/mtan, 'NYUv2' link,\n"
    "288x384, 13 classes): unzip it so that <root>/train/image/0.npy and <root>/val/normal/0.npy exist,\n"
    f"and pass data_dir=<root> (or set {ENV_VAR}). See docs/datasets.md."
)
_FIELDS = {"image": "image", "segmentation": "label", "depth": "depth", "normals": "normal"}


def load_nyuv2(data_dir: str | os.PathLike | None = None, *, val_fraction: float = 0.1,
               seed: int = 0) -> DenseDataset:
    """NYUv2 as a :class:`DenseDataset` (see the module docstring); raises
    ``FileNotFoundError`` saying what is missing, where, and how to get it, and
    :class:`~jaxmtl.data.checks.DataError` naming a file that fails the up-front checks
    (:func:`jaxmtl.data.dense.check_numpy_split`)."""
    root = find_root(data_dir, ENV_VAR, DEFAULT_DIR)
    train, test = (DenseSplit(Resized(s.examples, SIZE))
                   for s in read_numpy_splits(root, ("train", "val"), _FIELDS, HOW_TO_GET, NUM_CLASSES))
    train, val = held_out(train, val_fraction, seed)
    return DenseDataset(train, val, test, TASKS, NUM_CLASSES)
