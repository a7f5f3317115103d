"""CelebA (Liu et al. 2015): the 40 binary attributes as 40 tasks, 64x64 images (Sener & Koltun 2018).

Read through tfds's ``celeb_a`` builder (official splits: 162,770 train, 19,867
validation, 19,962 test). Its automatic download (Google Drive) often fails: put
``img_align_celeba.zip``, ``list_eval_partition.txt``, ``list_attr_celeba.txt``
and ``list_landmarks_align_celeba.txt`` in a folder and pass it as
``manual_dir``. Images (aligned, 218x178) are resized bilinearly to ``size``
(64x64). Batches: ``{"image": f32 (B, 64, 64, 3) in [0, 1], "attributes": bool
(B, 40)}``; a ``attributes_mask`` of the same shape, when a source provides one,
marks the labelled entries (see :func:`jaxmtl.data.tasks.attribute_tasks`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from jaxmtl.data.checks import data_error
from jaxmtl.data.dense import DenseDataset, DenseSplit, resize_bilinear

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young")
"""The 40 attributes in the order of ``list_attr_celeba.txt`` (task ``t`` = column ``t``)."""

HOW_TO_GET = (
    "Get CelebA for tfds's 'celeb_a' builder: from the CelebA page (mmlab.ie.cuhk.edu.hk/projects/CelebA.html)\n"
    "download img_align_celeba.zip, list_eval_partition.txt, list_attr_celeba.txt and\n"
    "list_landmarks_align_celeba.txt into one folder and call load_celeba(manual_dir=<folder>)\n"
    "(tfds prepares it once into data_dir, default ~/tensorflow_datasets). See docs/datasets.md."
)


class CelebAExamples(Sequence):
    """Records of a tfds ``celeb_a`` source as ``{"image": f32 (size, 3), "attributes": bool (40,)}``."""

    def __init__(self, source, size: tuple[int, int]):
        self.source, self.size = source, size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        image = resize_bilinear(np.asarray(ex["image"], np.float32) / 255.0, self.size)
        return {"image": image, "attributes": np.array([bool(ex["attributes"][a]) for a in ATTRIBUTES])}


def load_celeba(data_dir: str | os.PathLike | None = None, *, manual_dir: str | os.PathLike | None = None,
                size: tuple[int, int] = (64, 64)) -> DenseDataset:
    """CelebA's official splits as a :class:`DenseDataset` with the 40 attribute tasks.

    ``data_dir``: tfds's data directory; ``manual_dir``: the folder of the
    manually downloaded files. Raises ``FileNotFoundError`` saying how to get them, and
    :class:`~jaxmtl.data.checks.DataError` when a split's first record is not CelebA's
    (:func:`check_source`).
    """
    import tensorflow_datasets as tfds

    kwargs = {"download_and_prepare_kwargs": {
        "download_config": tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))}} if manual_dir else {}
    try:
        splits = [DenseSplit(CelebAExamples(tfds.data_source("celeb_a", split=s, data_dir=data_dir, **kwargs),
                                            tuple(size))) for s in ("train", "validation", "test")]
    except Exception as err:  # no files, failed download, bad checksum: say how to get the data
        where = f"manual_dir={manual_dir}" if manual_dir else "no manual_dir given"
        raise FileNotFoundError(f"tfds could not prepare 'celeb_a' (data_dir={data_dir}, {where}): "
                                f"{err}\n{HOW_TO_GET}") from None
    for name, split in zip(("train", "validation", "test"), splits):
        check_source(f"tfds celeb_a/{name} (data_dir={data_dir})", split.examples.source)
    return DenseDataset(*splits, tasks=ATTRIBUTES, num_classes=2)


def check_source(where: str, source) -> None:
    """A ``celeb_a`` source holds records, its first one an RGB ``uint8 (H, W, 3)`` image and
    the 40 :data:`ATTRIBUTES`; :class:`~jaxmtl.data.checks.DataError` otherwise."""
    if not len(source):
        raise data_error(where, "CelebA records", "none")
    ex = source[0]
    image = np.asarray(ex["image"])
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise data_error(where, "uint8 RGB images (H, W, 3)", f"{image.dtype} {image.shape}")
    missing = [a for a in ATTRIBUTES if a not in ex["attributes"]]
    if missing:
        raise data_error(where, f"the {len(ATTRIBUTES)} attributes", f"none of {', '.join(missing)}")
