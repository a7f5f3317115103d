"""Paper C's Multi-MNIST layout built from IDX files the test writes."""
from __future__ import annotations

import numpy as np
import pytest

from jaxmtl.data.multi_mnist import MEAN, OUT, PAIRS, STD, TASKS, VAL_SIZE, compose, make_multi_mnist, pair_batches
from tests.conftest import write_fake_fashion_mnist


def test_layout_by_hand():
    a = np.zeros((28, 28), np.uint8)
    a[0, 0] = 200                       # the left item's top-left pixel: canvas (0, 0)
    b = np.zeros((28, 28), np.uint8)
    b[10:20, 10:20] = 100               # the right item: canvas rows/cols 16..25
    split = compose(np.stack([a, b]), np.array([3, 7]), np.random.default_rng(0))
    first = split.images[0, ..., 0]     # a on the left, b on the right (the only partner)
    assert first.shape == (OUT, OUT) and split.labels[0].tolist() == [3, 7]
    # nearest resize: output pixel i samples canvas floor((i + 0.5) * 36 / 28)
    src = np.floor((np.arange(28) + 0.5) * 36 / 28).astype(int)
    canvas = np.zeros((36, 36), np.uint8)
    canvas[0:28, 0:28] = a
    canvas[6:34, 6:34] = np.maximum(canvas[6:34, 6:34], b)
    np.testing.assert_array_equal(first, canvas[src[:, None], src[None, :]])
    assert first[0, 0] == 200
    # each reconstruction target is the original item, unshifted and unresized (paper C's loader)
    np.testing.assert_array_equal(split.items[0, 0], a)
    np.testing.assert_array_equal(split.items[0, 1], b)
    # batches normalise the canvas and the targets alike with MNIST's mean and std
    batch = next(pair_batches(split, ("CL", "RR"), 1))
    np.testing.assert_allclose(batch["image"][0, ..., 0], (first / 255 - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(batch["items"][0, 1], (b / 255 - 0.1307) / 0.3081, rtol=1e-6)
    assert batch["items"][0, 1].min() == pytest.approx(-0.1307 / 0.3081)


def test_splits_from_files(tmp_path):
    d = write_fake_fashion_mnist(tmp_path / "f", n_train=VAL_SIZE + 40, n_test=20)
    data = make_multi_mnist(d, n_train=16)
    assert (len(data.train), len(data.val), len(data.test)) == (16, VAL_SIZE, 20)
    assert data.val.labels[:, 0].tolist()[:5] == (np.arange(40, 45) % 10).tolist()   # the last 10k
    again = make_multi_mnist(d, n_train=16)
    np.testing.assert_array_equal(again.train.images, data.train.images)        # deterministic
    batch = next(pair_batches(data.train, PAIRS["CL+RR"], 8, np.random.default_rng(0)))
    assert batch["image"].shape == (8, 28, 28, 1) and batch["items"].shape == (8, 2, 28, 28)
    assert "items" not in next(pair_batches(data.train, ("CL", "CR"), 8))
    with pytest.raises(ValueError, match="unknown tasks"):
        next(pair_batches(data.train, ("CL", "XX"), 8))
    assert set(TASKS) == {t for pair in PAIRS.values() for t in pair} | {"CR"}


def test_mnist_needs_its_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST IDX files not found in .*--data-dir"):
        make_multi_mnist(tmp_path, source="mnist")
    with pytest.raises(ValueError, match="source"):
        make_multi_mnist(source="kmnist")
