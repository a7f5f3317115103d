"""jaxmtl.data.corruptions: determinism, ranges, severity order, hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from jaxmtl.data import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random
from jaxmtl.data.corruptions import _area_matrix, _dct_matrix, _LUMINANCE, jpeg, quantisation_table

RNG = np.random.default_rng(0)
IMAGES = np.zeros((6, 36, 36, 1), np.uint8)
IMAGES[:, 6:30, 8:28] = RNG.integers(60, 256, (6, 24, 20, 1))  # an object on a black canvas


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_shape_dtype_range_determinism_and_severity(name):
    outs = [corrupt(IMAGES, name, s, seed=3) for s in SEVERITIES]
    for out in outs:
        assert out.shape == IMAGES.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outs[0], corrupt(IMAGES, name, 1, seed=3))  # deterministic
    dist = [np.abs(o.astype(float) - IMAGES).mean() for o in outs]
    assert dist[0] > 0 and dist[-1] > dist[0], dist  # severity 5 is further from clean than 1
    floats = corrupt(IMAGES[..., 0] / 255.0, name, 3, seed=3)
    assert floats.dtype == np.float64 and floats.min() >= 0 and floats.max() <= 1
    np.testing.assert_allclose(floats * 255, outs[2][..., 0], atol=0.51)  # same result either way


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur",
                                  "motion_blur", "snow", "fog", "elastic_transform"])
def test_random_corruptions_depend_on_the_seed(name):
    assert not np.array_equal(corrupt(IMAGES, name, 3, seed=0), corrupt(IMAGES, name, 3, seed=1))


def test_hand_computed_cases():
    x = np.array([[[0.0, 1.0], [0.5, 0.98]]])
    np.testing.assert_allclose(corrupt(x, "brightness", 1), [[[0.05, 1.0], [0.55, 1.0]]])
    y = np.array([[[0.0, 1.0]]])  # mean 0.5, contrast 0.75
    np.testing.assert_allclose(corrupt(y, "contrast", 1), [[[0.125, 0.875]]])
    flat = np.full((2, 36, 36), 0.6)
    for name in ("defocus_blur", "zoom_blur", "pixelate", "motion_blur", "contrast"):
        np.testing.assert_allclose(corrupt(flat, name, 5), flat, atol=1e-12, err_msg=name)
    noisy = corrupt(np.full((50, 36, 36), 0.5), "impulse_noise", 5)
    frac = np.mean(noisy != 0.5)
    assert 0.06 < frac < 0.08 and set(np.unique(noisy)) == {0.0, 0.5, 1.0}
    g = corrupt(np.full((50, 36, 36), 0.5), "gaussian_noise", 5)
    assert np.std(g) == pytest.approx(0.10, rel=0.03)


def test_jpeg_by_hand():
    assert np.array_equal(quantisation_table(50), _LUMINANCE)  # quality 50 is the standard table
    assert quantisation_table(100).max() == 1
    d = _dct_matrix()
    np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-12)
    const = np.full((1, 12, 20), 200 / 255)  # DC only: quantised exactly, padded blocks included
    for q in (40, 80):
        np.testing.assert_allclose(jpeg(const, q), const)
    img = RNG.random((2, 16, 16))
    assert np.abs(jpeg(img, 100) - img).max() <= 2 / 255  # quality 100: rounding only
    assert np.abs(jpeg(img, 10) - img).mean() > np.abs(jpeg(img, 90) - img).mean()
    with pytest.raises(ValueError, match="quality"):
        quantisation_table(0)


def test_area_matrix_averages():
    m = _area_matrix(36, 23)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(_area_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_corrupt_random_and_errors():
    out, which, sev = corrupt_random(IMAGES, seed=5)
    out2, which2, sev2 = corrupt_random(IMAGES, seed=5)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(which, which2)
    assert out.shape == IMAGES.shape and set(sev) <= set(SEVERITIES) and which.max() < len(CORRUPTIONS)
    only, which, _ = corrupt_random(IMAGES, seed=1, names=["brightness"])
    assert np.all(which == 0) and np.all(only >= IMAGES)
    with pytest.raises(ValueError, match="frost photographs"):
        corrupt(IMAGES, "frost", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(IMAGES, "fog", 6)
    with pytest.raises(ValueError, match="grayscale"):
        corrupt(np.zeros((2, 8, 8, 3), np.uint8), "fog", 1)
