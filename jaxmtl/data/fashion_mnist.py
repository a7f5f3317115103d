"""Locating and reading the real Fashion-MNIST IDX files (Xiao et al. 2017)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxmtl.data.checks import check_class_ids, check_shape, data_error, missing_list
from jaxmtl.data.idx import read_idx

NUM_CLASSES = 10
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "JAXMTL_FASHION_MNIST_DIR"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
HOW_TO_GET = (
    "Fashion-MNIST IDX files not found. Get them with one of:\n"
    "  * Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist   (files land in "
    f"{SYSTEM_DIR})\n"
    "  * download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from the Fashion-MNIST "
    f"repository into a directory and pass it as data_dir (or set {ENV_VAR})\n"
    "  * with internet and tensorflow installed, tfds downloads 'fashion_mnist' itself."
)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first directory holding all four IDX files: ``data_dir``, ``$JAXMTL_FASHION_MNIST_DIR``,
    then the Debian package's directory; ``None`` when there is none. A directory holding
    some of them only raises ``FileNotFoundError`` naming the missing ones."""
    candidates = [Path(p) for p in (data_dir, os.environ.get(ENV_VAR)) if p] + [SYSTEM_DIR]
    for directory in candidates:
        if has_idx_files(directory):
            return directory
    return None


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images uint8[N, 28, 28], labels int32[N]), "test": ...}``.

    Looks for the IDX files (see :func:`find_fashion_mnist`), then tries
    tensorflow-datasets; raises ``FileNotFoundError`` saying how to get them, and
    :class:`~jaxmtl.data.checks.DataError` for a file that fails the checks of
    :func:`read_idx_dataset`.
    """
    directory = find_fashion_mnist(data_dir)
    if directory is not None:
        return read_idx_dataset(directory)
    try:
        raw = _load_tfds(data_dir)
    except Exception as err:  # no tensorflow, no internet, ...: report both routes
        raise FileNotFoundError(f"{HOW_TO_GET}\n(tfds fallback failed: {err})") from None
    for split, (images, labels) in raw.items():
        check_split(f"tfds fashion_mnist/{split}", images, f"tfds fashion_mnist/{split}", labels)
    return raw


def missing_idx_files(directory: str | os.PathLike) -> list[str]:
    """The MNIST-layout IDX files (by their ``.gz`` name) that ``directory`` lacks."""
    return [stem + ".gz" for pair in _FILES.values() for stem in pair if not _find(Path(directory), stem)]


def has_idx_files(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds the four (possibly gzipped) MNIST-layout IDX files; ``FileNotFoundError``
    naming the missing ones when it holds some of them only."""
    missing = missing_idx_files(directory)
    if 0 < len(missing) < 2 * len(_FILES):
        raise FileNotFoundError(missing_list(missing, directory))
    return not missing


def check_split(images_at: str | os.PathLike, images: np.ndarray, labels_at: str | os.PathLike,
                labels: np.ndarray) -> None:
    """MNIST-layout images ``uint8 (N, 28, 28)`` and ``N`` labels ``0..9``; :class:`DataError` otherwise."""
    check_shape(images_at, images.shape, [(len(images), 28, 28)], "images")
    if images.dtype != np.uint8:
        raise data_error(images_at, "images of dtype uint8", f"dtype {images.dtype}")
    check_shape(labels_at, labels.shape, [(len(images),)], f"one label per image of {images_at}")
    check_class_ids(labels_at, labels, NUM_CLASSES)


def read_idx_dataset(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four MNIST-layout IDX files of ``directory`` (MNIST and Fashion-MNIST share the
    layout and the file names) as ``{"train": (uint8[N, 28, 28], int32[N]), "test": ...}``,
    checked (:func:`check_split`: a wrong shape, dtype or a label out of 0..9 raises
    :class:`~jaxmtl.data.checks.DataError` naming the file)."""
    directory = Path(directory)
    out = {}
    for split, (img, lab) in _FILES.items():
        images_at, labels_at = _find(directory, img), _find(directory, lab)
        images, labels = read_idx(images_at), read_idx(labels_at)
        check_split(images_at, images, labels_at, labels)
        out[split] = (images, labels.astype(np.int32))
    return out


def _load_tfds(data_dir):
    import tensorflow_datasets as tfds

    out = {}
    for split in _FILES:
        ds = tfds.load("fashion_mnist", split=split, batch_size=-1, as_supervised=True,
                       data_dir=data_dir)
        images, labels = tfds.as_numpy(ds)
        out[split] = (images[..., 0].astype(np.uint8), labels.astype(np.int32))
    return out
