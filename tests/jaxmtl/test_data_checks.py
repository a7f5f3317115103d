"""Data files checked up front (issue 25): each broken file fails at load time, naming the file,
what was expected and what was found; a data set found in part names just what is missing."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from jaxmtl.data import load_cityscapes, load_fashion_mnist, load_nyuv2, make_multi_mnist, read_idx, write_idx
from jaxmtl.data import celeba, fashion_mnist, qm9
from jaxmtl.data.checks import DataError
from tests.conftest import write_fake_fashion_mnist
from tests.fake_datasets import cityscapes_layout, nyuv2_layout


@pytest.fixture
def city(tmp_path):
    return cityscapes_layout(tmp_path / "city", hw=(16, 32), n_train=5, n_val=2)


@pytest.mark.parametrize("label, found", [
    (np.zeros((32, 16), np.float32), r"found shape \(32, 16\)"),            # transposed
    (np.zeros((8, 16), np.float32), r"found shape \(8, 16\)"),              # the wrong size
])
def test_cityscapes_label_maps_of_another_shape(city, label, found):
    np.save(city / "train" / "label_7" / "3.npy", label)
    with pytest.raises(DataError, match=rf"^{city}/train/label_7/3\.npy: expected segmentation for the image "
                                        rf"{city}/train/image/3\.npy of shape \(16, 32\) or \(16, 32, 1\), {found}$"):
        load_cityscapes(city)


def test_cityscapes_labels_out_of_range(city):
    labels = np.arange(16 * 32).reshape(16, 32) % 7 + 100.0        # 100..106 with 7 classes
    np.save(city / "val" / "label_7" / "1.npy", labels.astype(np.float32))
    with pytest.raises(DataError, match=rf"^{city}/val/label_7/1\.npy: expected class ids 0\.\.6 or -1 \(ignored\), "
                                        r"found 7 other values \(100\.\.106\)$"):
        load_cityscapes(city)
    load_cityscapes(city, classes=19, tasks=("depth",))   # the 7-class labels are not read for depth alone


def test_a_cut_npy_file_is_named(city):
    path = city / "train" / "depth" / "2.npy"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=rf"^{path}: expected a NumPy \.npy array, found ValueError"):
        load_cityscapes(city)


def test_nyuv2_pixels_out_of_range(tmp_path):
    root = nyuv2_layout(tmp_path / "nyu")
    np.save(root / "val" / "image" / "1.npy", np.full((3, 16, 32), 255, np.float32))   # 0..255, not 0..1
    with pytest.raises(DataError, match=rf"^{root}/val/image/1\.npy: expected pixel values in \[0, 1\], "
                                        r"found the value 255$"):
        load_nyuv2(root)


def test_a_dense_set_found_in_part_names_only_what_is_missing(city):
    shutil.rmtree(city / "val" / "depth")
    (city / "train" / "label_7" / "4.npy").unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{city} lacks val/depth/ \(the data set's other files are there\)$"):
        load_cityscapes(city)
    shutil.copytree(city / "train" / "depth", city / "val" / "depth")
    for extra in ("2.npy", "3.npy", "4.npy"):
        (city / "val" / "depth" / extra).unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{city}/train/label_7 lacks 4\.npy \(the data set's other files "
                                                r"are there\)$"):
        load_cityscapes(city)
    (city / "train" / "image" / "1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{city}/train/image lacks 1\.npy "):
        load_cityscapes(city)


def test_a_cut_gzip_idx_file_is_named(tmp_path):
    d = write_fake_fashion_mnist(tmp_path / "f")
    path = d / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])       # a download cut short: EOFError inside gzip
    with pytest.raises(DataError, match=rf"^{path}: expected a complete gzip file \(download it again\), "
                                        r"found EOFError"):
        load_fashion_mnist(d)
    plain = tmp_path / "x.idx"
    plain.write_bytes(bytes([0, 0, 8, 3, 0, 0]))       # a header cut short
    with pytest.raises(DataError, match=r"x\.idx: expected an IDX header of 16 bytes, found 6 bytes in all"):
        read_idx(plain)


def test_multi_mnist_labels_out_of_range_name_the_file(tmp_path):
    d = write_fake_fashion_mnist(tmp_path / "mnist", n_train=30, n_test=10)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, np.uint8))
    with pytest.raises(DataError, match=rf"^{d}/t10k-labels-idx1-ubyte\.gz: expected class ids 0\.\.9, "
                                        r"found the value 12$"):
        make_multi_mnist(d, source="mnist")
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: expected one label per image of .*"
                                        r"t10k-images-idx3-ubyte\.gz of shape \(10,\), found shape \(9,\)$"):
        make_multi_mnist(d, source="mnist")


def test_idx_files_found_in_part_name_only_the_missing_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nowhere")
    d = write_fake_fashion_mnist(tmp_path / "f", n_train=30, n_test=10)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    (d / "train-images-idx3-ubyte.gz").unlink()
    expected = rf"^{d} lacks train-images-idx3-ubyte\.gz, t10k-labels-idx1-ubyte\.gz \(the data set's other files are there\)$"
    with pytest.raises(FileNotFoundError, match=expected):
        load_fashion_mnist(d)
    with pytest.raises(FileNotFoundError, match=expected):
        make_multi_mnist(d, source="mnist")


def test_tfds_records_are_checked():
    good = {"image": np.zeros((218, 178, 3), np.uint8), "attributes": {a: False for a in celeba.ATTRIBUTES}}
    celeba.check_source("celeb_a/train", [good])
    with pytest.raises(DataError, match=r"^celeb_a/train: expected uint8 RGB images \(H, W, 3\), found float32 \(218, 178\)$"):
        celeba.check_source("celeb_a/train", [{**good, "image": np.zeros((218, 178), np.float32)}])
    with pytest.raises(DataError, match="^celeb_a/test: expected CelebA records, found none$"):
        celeba.check_source("celeb_a/test", [])
    molecule = {"num_atoms": 2, "charges": np.pad([6, 1], (0, 27)), "positions": np.zeros((29, 3)),
                **{t: 0.0 for t in qm9.TARGETS}}
    qm9.check_source("qm9/train", [molecule])
    with pytest.raises(DataError, match=r"^qm9/train: expected atomic numbers \(1, 6, 7, 8, 9\), found \[17\]$"):
        qm9.check_source("qm9/train", [{**molecule, "charges": np.pad([6, 17], (0, 27))}])
    with pytest.raises(DataError, match=r"^qm9/train: expected targets in \[-inf, inf\], found the value nan$"):
        qm9.check_source("qm9/train", [{**molecule, "mu": float("nan")}])


def test_a_tfds_cityscapes_record_of_another_shape():
    from jaxmtl.data.cityscapes import check_tfds_record
    from tests.fake_datasets import png16

    seg = {"image_id": "aachen_1", "image_left": np.zeros((32, 64, 3), np.uint8),
           "segmentation_label": np.zeros((32, 64, 1), np.uint8)}
    check_tfds_record(seg, {"disparity_map": png16(np.ones((32, 64)))})
    with pytest.raises(DataError, match=r"^tfds cityscapes record aachen_1: expected label ids for its image of shape "
                                        r"\(32, 64, 1\) or \(32, 64\), found shape \(64, 32, 1\)$"):
        check_tfds_record({**seg, "segmentation_label": np.zeros((64, 32, 1), np.uint8)}, None)
    with pytest.raises(DataError, match=r"expected disparities for its image of shape \(32, 64, 1\), found shape "
                                        r"\(16, 64, 1\)$"):
        check_tfds_record(seg, {"disparity_map": png16(np.ones((16, 64)))})
