"""Locating and reading the real Fashion-MNIST IDX files (Xiao et al. 2017)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxmtl.data.idx import read_idx

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
    then the Debian package's directory; ``None`` when there is none."""
    candidates = [Path(p) for p in (data_dir, os.environ.get(ENV_VAR)) if p] + [SYSTEM_DIR]
    for directory in candidates:
        if has_idx_files(directory):
            return directory
    return None


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images uint8[N, 28, 28], labels int32[N]), "test": ...}``.

    Looks for the IDX files (see :func:`find_fashion_mnist`), then tries
    tensorflow-datasets; raises ``FileNotFoundError`` saying how to get them.
    """
    directory = find_fashion_mnist(data_dir)
    if directory is not None:
        return read_idx_dataset(directory)
    try:
        return _load_tfds(data_dir)
    except Exception as err:  # no tensorflow, no internet, ...: report both routes
        raise FileNotFoundError(f"{HOW_TO_GET}\n(tfds fallback failed: {err})") from None


def has_idx_files(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds the four (possibly gzipped) MNIST-layout IDX files."""
    return all(_find(Path(directory), stem) for pair in _FILES.values() for stem in pair)


def read_idx_dataset(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four MNIST-layout IDX files of ``directory`` (MNIST and Fashion-MNIST share the
    layout and the file names) as ``{"train": (uint8[N, 28, 28], int32[N]), "test": ...}``."""
    directory = Path(directory)
    out = {}
    for split, (img, lab) in _FILES.items():
        images = read_idx(_find(directory, img))
        labels = read_idx(_find(directory, lab)).astype(np.int32)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
            raise ValueError(f"{directory}: {split} images {images.shape} / labels "
                             f"{labels.shape} are not MNIST shaped")
        out[split] = (images, labels)
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
