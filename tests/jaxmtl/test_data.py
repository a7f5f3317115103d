"""IDX reading/writing, Fashion-MNIST discovery and Multi-Fashion construction."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from jaxmtl.data import batches, find_fashion_mnist, load_fashion_mnist, make_multi_fashion, overlay
from jaxmtl.data import read_idx, write_idx
from jaxmtl.data import fashion_mnist
from tests.conftest import write_fake_fashion_mnist


@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_idx_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_idx(tmp_path / name, a)
    np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad: expected an IDX file, found no IDX magic number"):
        read_idx(tmp_path / "bad")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3)
    with pytest.raises(ValueError, match=r"short.gz: expected 10 bytes of data \(the header's shape \(10,\)\), found 3 bytes"):
        read_idx(tmp_path / "short.gz")


def test_finds_user_dir_plain_or_gzipped(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    d = write_fake_fashion_mnist(tmp_path / "plain", gz=False)
    assert find_fashion_mnist(d) == d
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(d))
    assert find_fashion_mnist() == d
    raw = load_fashion_mnist(d)
    assert raw["train"][0].shape == (120, 28, 28) and raw["test"][1].dtype == np.int32


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "_load_tfds", lambda d: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty")


def test_overlay_places_items_in_opposite_corners():
    items = np.zeros((2, 28, 28), np.uint8)
    items[0, 0, 0] = 200   # top-left pixel of item 0
    items[1, 27, 27] = 100  # bottom-right pixel of item 1
    split = overlay(items, np.array([3, 7]), 2, np.random.default_rng(0), jitter=0)
    assert split.images.shape == (2, 36, 36, 1)
    first = int(np.argmax(split.labels[:, 0] == 3))
    assert split.images[first, 0, 0, 0] == 200           # item 0 at the top-left corner
    assert split.images[first, 35, 35, 0] == 100          # its partner (item 1) at the bottom-right
    np.testing.assert_array_equal(np.sort(split.labels, axis=0), [[3, 3], [7, 7]])


def test_multi_fashion_is_deterministic_with_disjoint_val(fake_fashion):
    a = make_multi_fashion(fake_fashion, seed=1, n_train=50, n_val=20, n_test=30)
    b = make_multi_fashion(fake_fashion, seed=1, n_train=50, n_val=20, n_test=30)
    c = make_multi_fashion(fake_fashion, seed=2, n_train=50, n_val=20, n_test=30)
    assert (len(a.train), len(a.val), len(a.test)) == (50, 20, 30)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, c.train.images)
    assert a.train.labels.shape == (50, 2) and a.train.labels.max() < 10
    with pytest.raises(ValueError, match="val_fraction"):
        make_multi_fashion(fake_fashion, val_fraction=1.5)


def test_batches_shuffle_and_cover(fake_fashion):
    d = make_multi_fashion(fake_fashion, n_train=50, n_val=20, n_test=30)
    train = list(batches(d.train, 16, np.random.default_rng(0)))
    assert len(train) == 3 and train[0]["image"].dtype == np.float32
    assert 0.0 <= train[0]["image"].min() and train[0]["image"].max() <= 1.0
    ev = list(batches(d.test, 16, drop_last=False))
    assert sum(len(b["labels"]) for b in ev) == 30
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(d.test, 0))
