"""jaxmtl.data.corruptions: determinism, ranges, severity order, hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from jaxmtl.data import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random
from jaxmtl.data import corruptions as module
from jaxmtl.data.corruptions import _area_matrix, _dct_matrix, _LUMINANCE, _streak, jpeg, quantisation_table

RNG = np.random.default_rng(0)
IMAGES = np.zeros((6, 36, 36, 1), np.uint8)
IMAGES[:, 6:30, 8:28] = RNG.integers(60, 256, (6, 24, 20, 1))  # an object on a black canvas


def _items(n=16, seed=0):
    """Garment-like items: smooth shapes with a soft texture on a black 36x36 canvas."""
    rng = np.random.default_rng(seed)
    shape = ndimage.gaussian_filter(rng.random((n, 36, 36)), (0, 4, 4))
    mask = ndimage.gaussian_filter(np.pad(np.ones((n, 24, 20)), ((0, 0), (6, 6), (8, 8))), (0, 1, 1))
    texture = 0.6 + 0.4 * ndimage.gaussian_filter(rng.random((n, 36, 36)), (0, 1, 1))
    x = mask * (0.4 + 0.5 * texture * (shape > np.median(shape)))
    return np.round(255 * np.clip(x, 0, 1)).astype(np.uint8)


ITEMS = _items()
NOT_IN_SEVERITY_ORDER = ("glass_blur", "elastic_transform", "pixelate")
"""Corruptions whose CIFAR-10-C parameters do not order the distance by severity (module docstring)."""


def _distances(name):
    return [np.sqrt(np.mean((corrupt(ITEMS, name, s, seed=3).astype(float) - ITEMS) ** 2)) for s in SEVERITIES]


@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - set(NOT_IN_SEVERITY_ORDER)))
def test_distance_from_clean_grows_with_severity(name):
    d = _distances(name)
    assert d[0] > 0 and d[-1] > 1.2 * d[0], d
    tie = 1e-3 if name == "motion_blur" else 0.0  # its severities 3 and 4 nearly tie (module docstring)
    assert all(b >= a * (1 - tie) for a, b in zip(d, d[1:])), d
    assert sum(b > a for a, b in zip(d, d[1:])) >= 3, d


def test_documented_exceptions_to_the_severity_order():
    elastic, glass, pixelate = (_distances(n) for n in NOT_IN_SEVERITY_ORDER[1::-1] + ("pixelate",))
    assert all(b < a for a, b in zip(elastic, elastic[1:])), elastic  # the affine step shrinks
    assert min(glass[3:]) > max(glass[:3]), glass  # two sweeps of swaps beat one
    assert pixelate[4] > pixelate[3] > pixelate[2] > max(pixelate[:2]), pixelate


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_shape_dtype_range_determinism_and_severity(name):
    outs = [corrupt(IMAGES, name, s, seed=3) for s in SEVERITIES]
    for out in outs:
        assert out.shape == IMAGES.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outs[0], corrupt(IMAGES, name, 1, seed=3))  # deterministic
    assert all(np.abs(o.astype(float) - IMAGES).mean() > 0 for o in outs)  # every severity corrupts
    floats = corrupt(IMAGES[..., 0] / 255.0, name, 3, seed=3)
    assert floats.dtype == np.float64 and floats.min() >= 0 and floats.max() <= 1
    np.testing.assert_allclose(floats * 255, outs[2][..., 0], atol=0.51)  # same result either way


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "glass_blur",
                                  "motion_blur", "snow", "fog", "elastic_transform"])
def test_random_corruptions_depend_on_the_seed(name):
    assert not np.array_equal(corrupt(IMAGES, name, 3, seed=0), corrupt(IMAGES, name, 3, seed=1))


def test_motion_kernel_is_imagemagick_streak():
    k = _streak(6, 1.0, 0.0)  # 13 taps along +x from the centre, Gaussian in the distance
    centre = k.shape[0] // 2
    row = k[centre, centre:]
    np.testing.assert_allclose(row / row[0], np.exp(-np.arange(13) ** 2 / 2), atol=1e-12)
    assert k.sum() == pytest.approx(1.0) and k[centre, :centre].sum() == 0 and k[:centre].sum() == 0
    down = _streak(6, 1.0, 90.0)  # 90 degrees: along +y (image rows)
    np.testing.assert_allclose(down[centre:, centre], row)


@pytest.mark.parametrize("name, low, high", [("motion_blur", -45, 45), ("snow", -135, -45)])
def test_streak_angles_follow_cifar10c(name, low, high, monkeypatch):
    seen = []
    real = module._motion

    def spy(x, radius, sigma, angles):
        seen.extend(angles)
        return real(x, radius, sigma, angles)

    monkeypatch.setattr(module, "_motion", spy)
    corrupt(np.repeat(ITEMS, 4, axis=0), name, 2, seed=1)
    assert low <= min(seen) and max(seen) <= high and max(seen) - min(seen) > 0.6 * (high - low)


def test_elastic_severity_1_is_an_affine_warp():
    ramp = np.broadcast_to(np.add.outer(np.arange(36), 2 * np.arange(36)) / 120.0, (3, 36, 36))
    yy, xx = np.mgrid[8:28, 8:28]
    design = np.stack([yy.ravel(), xx.ravel(), np.ones(yy.size)], axis=1)

    def residual(out):  # how far the interior is from a plane (an affine image of a ramp is a ramp)
        return max(np.abs(design @ np.linalg.lstsq(design, o[8:28, 8:28].ravel(), rcond=None)[0]
                          - o[8:28, 8:28].ravel()).max() for o in out)

    one, five = corrupt(ramp, "elastic_transform", 1, seed=2), corrupt(ramp, "elastic_transform", 5, seed=2)
    assert not np.allclose(one, ramp) and residual(one) < 1e-9  # moved, and only affinely
    assert residual(five) > 1e-3  # the displacement field bends it


def test_glass_blur_swaps_pixels():
    out = corrupt(ITEMS / 255.0, "glass_blur", 1, seed=0)  # sigma 0.05: the blurs are ~identity
    assert not np.allclose(out, ITEMS / 255.0)
    np.testing.assert_allclose(np.sort(out, axis=None), np.sort(ITEMS / 255.0, axis=None), atol=1e-6)


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
    with pytest.raises(ValueError, match=r"or RGB \(N, H, W, 3\), got shape \(2, 8, 8, 2\)"):
        corrupt(np.zeros((2, 8, 8, 2), np.uint8), "fog", 1)
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\], got values in \[-0.42, 1\]"):
        corrupt(np.array([[[-0.42, 1.0]]]), "fog", 1)   # e.g. normalised pixels


COLOUR = np.stack([ITEMS, np.roll(ITEMS, 3, axis=2), ITEMS // 2], axis=-1)[:6]
"""RGB items: three different channels."""
PER_CHANNEL_DRAWS = ("gaussian_noise", "shot_noise", "impulse_noise")


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_colour_images(name):
    outs = [corrupt(COLOUR, name, s, seed=3) for s in SEVERITIES]
    assert all(o.shape == COLOUR.shape and o.dtype == np.uint8 for o in outs)
    np.testing.assert_array_equal(outs[0], corrupt(COLOUR, name, 1, seed=3))
    assert all(np.abs(o.astype(float) - COLOUR).mean() > 0 for o in outs)
    gray = ITEMS[:4]   # a gray image given as RGB gets the gray corruption in each channel
    as_rgb = corrupt(np.repeat(gray[..., None], 3, axis=-1), name, 4, seed=5)
    if name in PER_CHANNEL_DRAWS:
        assert not np.array_equal(as_rgb[..., 0], as_rgb[..., 1])
    else:
        for k in range(3):
            np.testing.assert_array_equal(as_rgb[..., k], corrupt(gray, name, 4, seed=5), err_msg=name)


def test_colour_brightness_keeps_hue_and_saturation():
    from matplotlib.colors import rgb_to_hsv

    x = RNG.random((2, 8, 8, 3))
    x[0, 0, 0] = 0.0   # black: becomes gray c
    out = corrupt(x, "brightness", 2)
    before, after = rgb_to_hsv(x), rgb_to_hsv(out)
    lit = before[..., 2] > 0
    np.testing.assert_allclose(after[..., :2][lit], before[..., :2][lit], atol=1e-9)
    np.testing.assert_allclose(after[..., 2], np.minimum(before[..., 2] + 0.1, 1.0), atol=1e-12)
    np.testing.assert_allclose(out[0, 0, 0], [0.1, 0.1, 0.1])


def test_colour_contrast_per_channel_and_colour_jpeg():
    x = np.zeros((1, 2, 2, 3))
    x[0, 0, 0] = [1.0, 0.2, 0.0]   # channel means 0.25, 0.05, 0
    np.testing.assert_allclose(corrupt(x, "contrast", 1)[0, :, :, 0], [[0.8125, 0.0625], [0.0625, 0.0625]])
    assert np.all(corrupt(x, "contrast", 1)[..., 2] == 0)
    flat = np.broadcast_to(np.array([200, 40, 90]) / 255, (1, 16, 16, 3))   # one colour: DC only
    assert np.abs(module.jpeg_colour(flat, 100) - flat).max() <= 1 / 255   # quality 100: rounding only
    # quality 40: the chroma DC's step is 21 (so 21/8 levels of Cb), x 1.772 in blue: at most 3 levels
    assert np.abs(module.jpeg_colour(flat, 40) - flat).max() <= 3 / 255
    img = RNG.random((2, 16, 24, 3))
    assert np.abs(module.jpeg_colour(img, 10) - img).mean() > np.abs(module.jpeg_colour(img, 90) - img).mean()
    assert np.array_equal(quantisation_table(50, module._CHROMINANCE), module._CHROMINANCE)
