"""Small fake files in each benchmark's layout, and fake tfds sources, for the data tests."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from jaxmtl.data.celeba import ATTRIBUTES
from jaxmtl.data.qm9 import TARGETS


def instance_ids(rng: np.random.Generator, hw) -> np.ndarray:
    """A Cityscapes-style instance-id map ``(H, W)``: random stuff ids (< 1000) and three rectangles
    (two cars 26000, 26001 and a person 24000; ``id >= 1000``), partly overlapping."""
    h, w = hw
    ids = rng.integers(0, 34, (h, w))
    for inst in (26000, 26001, 24000):
        top, left = int(rng.integers(0, h - h // 4)), int(rng.integers(0, w - w // 4))
        ids[top:top + int(rng.integers(1, h // 4 + 1)), left:left + int(rng.integers(1, w // 4 + 1))] = inst
    return ids


def write_numpy_layout(root: Path, fields: dict[str, tuple], sizes: dict[str, int], seed: int = 0) -> Path:
    """``root/<split>/<field>/<i>.npy`` with random arrays; ``fields[name] = (shape, kind)``; kind
    ``instance_ids``: :func:`instance_ids` of ``shape``, ``offsets``: their offsets ``(H, W, 2)``
    with NaN off instances."""
    rng = np.random.default_rng(seed)
    for split, n in sizes.items():
        for name, (shape, kind) in fields.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                if kind == "label":
                    a = rng.integers(-1, shape[-1], shape[:-1]).astype(np.float32)
                elif kind == "instance_ids":
                    a = instance_ids(rng, shape)
                elif kind == "offsets":
                    from jaxmtl.data.cityscapes import instance_offsets

                    offsets, mask = instance_offsets(instance_ids(rng, shape[:2]))
                    a = np.where(mask[..., None], offsets, np.nan).astype(np.float32)
                elif kind == "depth":
                    a = rng.uniform(0, 3, shape).astype(np.float32) * (rng.random(shape) > 0.2)
                else:
                    a = rng.uniform(-1 if kind == "normal" else 0, 1, shape).astype(np.float32)
                np.save(root / split / name / f"{i}.npy", a)
    return root


def cityscapes_layout(root: Path, hw=(16, 32), n_train=5, n_val=2, instance: str | None = None) -> Path:
    """MTAN's Cityscapes layout; ``instance="ids"`` / ``"offsets"`` adds ``<split>/instance/<i>.npy``
    with instance ids ``(H, W)`` / offsets ``(H, W, 2)``."""
    h, w = hw
    fields = {"image": ((h, w, 3), "image"), "label_7": ((h, w, 7), "label"),
              "label_19": ((h, w, 19), "label"), "depth": ((h, w, 1), "depth")}
    if instance is not None:
        fields["instance"] = {"ids": ((h, w), "instance_ids"), "offsets": ((h, w, 2), "offsets")}[instance]
    return write_numpy_layout(root, fields, {"train": n_train, "val": n_val})


def gtfine_instances(root: Path, n: int = 3, hw=(32, 64)) -> Path:
    """``root/gtFine/{train,val}/<city>/<id>_gtFine_instanceIds.png`` (16-bit) for the image ids of
    :func:`fake_sources` (``<split>_<i>``, city ``<split>``); returns the ``gtFine`` folder."""
    rng = np.random.default_rng(1)
    for split, folder in (("train", "train"), ("validation", "val")):
        city = root / "gtFine" / folder / split
        city.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (city / f"{split}_{i}_gtFine_instanceIds.png").write_bytes(png16(instance_ids(rng, hw)))
    return root / "gtFine"


def nyuv2_layout(root: Path, hw=(16, 32), n_train=5, n_val=2) -> Path:
    h, w = hw
    return write_numpy_layout(root, {"image": ((3, h, w), "image"), "label": ((h, w, 13), "label"),
                                     "depth": ((h, w, 1), "depth"), "normal": ((h, w, 3), "normal")},
                              {"train": n_train, "val": n_val})


def png16(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def fake_sources(n: int = 3, hw=(32, 64)):
    """``as_data_source_fn`` for ``tfds.testing.mock_data``: consistent fake records of the
    ``cityscapes`` configs, ``celeb_a`` and ``qm9`` (random ones would not join or be valid)."""
    h, w = hw

    def source(builder, split, decoders=None, deserialize_method=None, **kwargs):
        rng = np.random.default_rng(len(split))
        name = builder.name
        config = builder.builder_config.name if builder.builder_config else None
        out = []
        for i in range(n):
            if name == "cityscapes" and config == "semantic_segmentation":
                out.append({"image_id": f"{split}_{i}", "image_left": rng.integers(0, 256, (h, w, 3), np.uint8),
                            "segmentation_label": rng.integers(0, 34, (h, w, 1)).astype(np.uint8)})
            elif name == "cityscapes":
                raw = rng.integers(0, 30000, (h, w)).astype(np.uint16)
                out.append({"image_id": f"{split}_{n - 1 - i}", "disparity_map": png16(raw)})
            elif name == "celeb_a":
                out.append({"image": rng.integers(0, 256, (218, 178, 3), np.uint8),
                            "attributes": {a: bool(rng.integers(0, 2)) for a in ATTRIBUTES}})
            elif name == "qm9":
                k = int(rng.integers(3, 10))
                out.append({"num_atoms": k, "charges": np.pad(rng.choice([1, 6, 7, 8, 9], k), (0, 29 - k)),
                            "positions": np.pad(rng.normal(size=(k, 3)) * 1.5, ((0, 29 - k), (0, 0))),
                            **{t: float(rng.normal()) for t in TARGETS}})
            else:
                raise ValueError(f"no fake source for {name}/{config}")
        return out

    return source


FAKE_TFDS_RECORDS = {"celeba": 32, "qm9": 4}
"""Records a split of the data sets tfds loads here (CelebA: 32, no zero accuracy for delta-m's base)."""


def fake_tfds(name: str):
    """A context in which the studies read fake tfds records of ``name`` (CelebA, QM9), or
    nothing for the data sets read from files."""
    if name not in FAKE_TFDS_RECORDS:
        return contextlib.nullcontext()
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(as_data_source_fn=fake_sources(FAKE_TFDS_RECORDS[name]))
