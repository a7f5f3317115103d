"""Loaders of the papers' benchmarks on small files the tests write (and fake tfds sources)."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxmtl.data import (ATTRIBUTES, TARGETS, dense_batches, load_celeba, load_cityscapes, load_nyuv2, load_qm9,
                         molecule_graph, prefetch, random_scale_crop)
from jaxmtl.data import prefetching
from jaxmtl.data.cityscapes import LABEL_TO_7, LABEL_TO_19, decode_disparity
from jaxmtl.data.dense import resize_bilinear
from tests.fake_datasets import cityscapes_layout, fake_sources, nyuv2_layout, png16


def test_cityscapes_numpy_layout_splits_and_batches(tmp_path):
    root = cityscapes_layout(tmp_path, hw=(128, 256), n_train=10, n_val=3)
    data = load_cityscapes(root, classes=19, val_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 3)
    assert data.tasks == ("segmentation", "depth") and data.num_classes == 19
    batch = next(dense_batches(data.train, 4, np.random.default_rng(0), augment=True))
    assert batch["image"].shape == (4, 128, 256, 3) and batch["image"].dtype == np.float32
    assert batch["segmentation"].shape == (4, 128, 256) and batch["segmentation"].dtype == np.int32
    assert batch["segmentation"].min() >= -1 and batch["segmentation"].max() < 19
    assert batch["depth"].shape == (4, 128, 256, 1)
    big = load_cityscapes(root, size=(256, 512))        # resized from the 128x256 files
    assert next(dense_batches(big.test, 3, drop_last=False))["image"].shape == (3, 256, 512, 3)
    # held-out validation is disjoint from training and deterministic in the seed
    again = load_cityscapes(root, classes=19, val_fraction=0.2)
    np.testing.assert_array_equal(data.val.examples.indices, again.val.examples.indices)
    assert not set(data.val.examples.indices) & set(data.train.examples.indices)


def test_missing_data_says_what_where_and_how(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXMTL_CITYSCAPES_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"(?s)train/image.*mtan.*cityscapes-dataset"):
        load_cityscapes(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"(?s)train/image.*NYUv2"):
        load_nyuv2(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="classes"):
        load_cityscapes(tmp_path, classes=8)
    with pytest.raises(ValueError, match="size"):
        load_cityscapes(tmp_path, size=(64, 64))


def test_nyuv2_numpy_layout_channel_first_images(tmp_path):
    root = nyuv2_layout(tmp_path, hw=(288, 384), n_train=4, n_val=2)
    data = load_nyuv2(root, val_fraction=0.25)
    assert (len(data.train), len(data.val), len(data.test)) == (3, 1, 2)
    batch = next(dense_batches(data.test, 2))
    assert batch["image"].shape == (2, 288, 384, 3) and batch["normals"].shape == (2, 288, 384, 3)
    assert batch["segmentation"].max() < 13 and batch["depth"].shape == (2, 288, 384, 1)


def test_random_scale_crop():
    h, w = 8, 16
    ex = {"image": np.random.default_rng(0).random((h, w, 3)).astype(np.float32),
          "segmentation": np.arange(h * w).reshape(h, w), "depth": np.full((h, w, 1), 6.0, np.float32),
          "normals": np.ones((h, w, 3), np.float32)}
    for seed in range(6):
        out = random_scale_crop(ex, np.random.default_rng(seed), scales=(2.0,))
        assert all(out[k].shape == ex[k].shape for k in ex)
        np.testing.assert_allclose(out["depth"], 3.0)                       # 2x closer
        labels = np.unique(out["segmentation"])                              # nearest: existing labels
        assert set(labels) <= set(ex["segmentation"].ravel()) and len(labels) == (h // 2) * (w // 2)
    same = random_scale_crop(ex, np.random.default_rng(0), scales=(1.0,))
    np.testing.assert_allclose(same["image"], ex["image"], atol=1e-6)
    np.testing.assert_allclose(resize_bilinear(np.ones((3, 5, 2)), (6, 10)), 1.0)


def test_label_remapping_and_16_bit_disparity():
    assert LABEL_TO_19[7] == 0 and LABEL_TO_19[33] == 18 and LABEL_TO_19[0] == -1 and LABEL_TO_19[9] == -1
    assert LABEL_TO_7[7] == 0 and LABEL_TO_7[26] == 6 and LABEL_TO_7[23] == 4 and LABEL_TO_7[3] == -1
    assert sorted(set(LABEL_TO_19) - {-1}) == list(range(19)) and sorted(set(LABEL_TO_7) - {-1}) == list(range(7))
    raw = np.array([[0, 1, 257, 30001]], np.uint16)
    np.testing.assert_allclose(decode_disparity(png16(raw))[..., 0], [[0, 0, 1, 30000 / 256]])


def test_cityscapes_tfds_joins_configs_and_keeps_16_bits():
    with tfds.testing.mock_data(as_data_source_fn=fake_sources(3, (32, 64))):
        data = load_cityscapes(classes=7, source="tfds", manual_dir="/nonexistent", val_fraction=0.34)
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 3)
    ex = data.test.example(0)
    assert ex["image"].shape == (128, 256, 3) and ex["segmentation"].shape == (128, 256)
    assert ex["segmentation"].min() >= -1 and ex["segmentation"].max() < 7
    assert ex["depth"].max() > 255 / 256 * 4           # values beyond 8 bits survived


def test_celeba_and_qm9_through_tfds():
    with tfds.testing.mock_data(as_data_source_fn=fake_sources(3)):
        celeba = load_celeba(manual_dir="/nonexistent")
        qm9 = load_qm9()
    batch = next(dense_batches(celeba.train, 2))
    assert batch["image"].shape == (2, 64, 64, 3) and batch["attributes"].shape == (2, 40)
    assert celeba.tasks == ATTRIBUTES
    b = next(dense_batches(qm9.train, 3))
    assert b["graph"]["nodes"].shape == (3, 29, 6) and b["graph"]["edges"].shape == (3, 29, 29, 16)
    assert b["targets"].shape == (3, len(TARGETS))
    np.testing.assert_allclose(b["targets"].mean(axis=0), 0, atol=1e-5)   # normalised on train


def test_molecule_graph_cutoff():
    pos = np.zeros((29, 3))
    pos[1, 0], pos[2, 0] = 1.0, 7.0
    g = molecule_graph(np.array([6, 1, 8] + [0] * 26), pos, 3, cutoff=5.0)
    assert g["adjacency"][0, 1] and not g["adjacency"][0, 2] and not g["adjacency"][0, 0]
    assert g["node_mask"].sum() == 3 and g["nodes"][0, 1] == 1 and g["nodes"][2, 3] == 1
    assert not g["adjacency"][3:].any() and np.all(g["edges"][0, 2] == 0)
    with pytest.raises(ValueError, match="num_atoms"):
        molecule_graph(np.zeros(29), pos, 0)


def test_prefetch_order_errors_and_early_exit():
    assert [int(x) for x in prefetch(iter(range(5)), size=2)] == list(range(5))

    def broken():
        yield 1
        raise RuntimeError("bad file")

    with pytest.raises(RuntimeError, match="bad file"):
        list(prefetch(broken(), device_put=False))
    it = prefetch(iter(range(100)), size=1, device_put=False)
    assert next(it) == 0
    it.close()
    with pytest.raises(ValueError):
        next(prefetch([], size=0))


def test_a_producer_left_by_an_exception_is_stopped_at_exit():
    """As after Ctrl-C in a training loop: the iterator is suspended, not closed, and its thread
    waits to put the next batch; :func:`prefetching.stop_all` (run at exit) ends it."""
    before = set(prefetching._RUNNING)
    it = prefetch(iter(range(100)), size=1, device_put=False)
    assert next(it) == 0
    [(_, thread)] = set(prefetching._RUNNING) - before
    assert thread.is_alive()
    prefetching.stop_all()
    assert not thread.is_alive()
    it.close()
    assert not set(prefetching._RUNNING) - before
