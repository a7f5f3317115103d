"""Image corruptions of Hendrycks & Dietterich (2019) for grayscale images, in NumPy.

Paper A (Elich et al.), study A4, fine-tunes and tests under the 15 corruptions
of ImageNet-C / CIFAR-10-C at 5 severities. This module re-implements 14 of
them for 1-channel images (``(N, H, W)`` or ``(N, H, W, 1)``, uint8 or float in
``[0, 1]``), vectorised over the batch and deterministic for a given seed:

========== ======================================================================
noise      ``gaussian_noise`` (add N(0, c^2)), ``shot_noise`` (Poisson(c x) / c),
           ``impulse_noise`` (a fraction c of pixels set to 0 or 1)
blur       ``defocus_blur`` (disk of radius r, then a Gaussian), ``glass_blur``
           (blur, local pixel displacement, blur), ``motion_blur`` (one-sided
           Gaussian streak at a random angle), ``zoom_blur`` (mean of centre zooms)
weather    ``snow`` (thresholded noise streaked by motion blur over a brightened
           image), ``fog`` (a plasma fractal added, then renormalised)
digital    ``brightness`` (add c), ``contrast`` (scale the deviation from the mean
           by c), ``elastic_transform`` (smooth random displacement field),
           ``pixelate`` (area downsampling by c, nearest upsampling),
           ``jpeg_compression`` (baseline JPEG's 8x8 DCT quantisation at quality c)
========== ======================================================================

Severity parameters follow the CIFAR-10-C ones (32x32 images, close to
Multi-Fashion's 36x36). ``frost`` is left out: it blends in photographs of
frost that are not part of any package here (:data:`SKIPPED`). JPEG is
the lossy part of the baseline codec (DCT, IJG-scaled luminance
quantisation table, rounding); the entropy coding it leaves out is lossless.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)
SKIPPED = {"frost": "blends in frost photographs that are not available offline"}


def _clip(x):
    return np.clip(x, 0.0, 1.0)


def gaussian_noise(x, severity, rng):
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return _clip(x + rng.normal(0.0, c, x.shape))


def shot_noise(x, severity, rng):
    c = (500, 250, 100, 75, 50)[severity - 1]
    return _clip(rng.poisson(x * c) / c)


def impulse_noise(x, severity, rng):
    c = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    u = rng.random(x.shape)
    salt = rng.random(x.shape) < 0.5
    return np.where(u < c, salt.astype(x.dtype), x)


def _per_image(x, kernel):
    return ndimage.convolve(x, kernel[None], mode="reflect")


def _disk(radius, alias_blur):
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r - 1:r + 2, -r - 1:r + 2]
    k = ((yy ** 2 + xx ** 2) <= radius ** 2).astype(np.float64)
    k = ndimage.gaussian_filter(k / k.sum(), alias_blur)
    return k / k.sum()


def defocus_blur(x, severity, rng):
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))[severity - 1]
    return _clip(_per_image(x, _disk(radius, alias)))


def glass_blur(x, severity, rng):
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2),
                                (0.4, 1, 2))[severity - 1]
    n, h, w = x.shape
    x = ndimage.gaussian_filter(x, (0, sigma, sigma))
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    batch = np.arange(n)[:, None, None]
    for _ in range(iterations):
        dy = rng.integers(-delta, 1, x.shape)  # one-sided, as numpy.randint(-delta, delta) in the original
        dx = rng.integers(-delta, 1, x.shape)
        x = x[batch, np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)]
    return _clip(ndimage.gaussian_filter(x, (0, sigma, sigma)))


def _streak(radius, sigma, angle):
    """One-sided Gaussian streak of ``radius`` pixels along ``angle`` (radians)."""
    size = 2 * radius + 1
    k = np.zeros((size, size))
    for d in np.linspace(0.0, radius, 4 * radius + 1):
        y, xx = radius - d * np.sin(angle), radius + d * np.cos(angle)
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        fy, fx = y - y0, xx - x0
        weight = np.exp(-d ** 2 / (2 * sigma ** 2))
        for yi, xi, f in ((y0, x0, (1 - fy) * (1 - fx)), (y0 + 1, x0, fy * (1 - fx)),
                          (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0 + 1, fy * fx)):
            if 0 <= yi < size and 0 <= xi < size:
                k[yi, xi] += weight * f
    return k / k.sum()


_ANGLES = np.deg2rad(np.linspace(-45, 45, 16))


def _motion(x, radius, sigma, rng):
    """Motion blur with a random angle per image (one of 16 between -45 and 45 degrees)."""
    which = rng.integers(0, len(_ANGLES), len(x))
    out = np.empty_like(x)
    for a in np.unique(which):
        sel = which == a
        out[sel] = _per_image(x[sel], _streak(radius, sigma, _ANGLES[a]))
    return out


def motion_blur(x, severity, rng):
    radius, sigma = ((10, 1.0), (10, 1.5), (10, 2.0), (10, 2.5), (12, 3.0))[severity - 1]
    return _clip(_motion(x, radius, sigma, rng))


def _zoom_matrix(size, factor):
    """``(size, size)`` linear-interpolation matrix of a zoom by ``factor`` about the centre."""
    centre = (size - 1) / 2
    src = np.clip((np.arange(size) - centre) / factor + centre, 0, size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    m = np.zeros((size, size))
    np.add.at(m, (np.arange(size), lo), 1 - (src - lo))
    np.add.at(m, (np.arange(size), hi), src - lo)
    return m


def _centre_zoom(x, factor):
    n, h, w = x.shape
    return _zoom_matrix(h, factor) @ x @ _zoom_matrix(w, factor).T


def zoom_blur(x, severity, rng):
    stop = (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1]
    factors = np.arange(1.01, stop, 0.01)
    return _clip((x + sum(_centre_zoom(x, z) for z in factors)) / (len(factors) + 1))


def snow(x, severity, rng):
    loc, scale, zoom, threshold, radius, sigma, blend = (
        (0.1, 0.2, 1.0, 0.6, 8, 3, 0.95), (0.1, 0.2, 1.0, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))[severity - 1]
    n, h, w = x.shape
    flakes = _centre_zoom(rng.normal(loc, scale, x.shape), zoom)
    flakes = np.where(flakes < threshold, 0.0, flakes)
    flakes = _motion(np.clip(flakes, 0, 1), radius, sigma, rng)
    base = blend * x + (1 - blend) * np.maximum(x, x * 1.5 + 0.5)
    return _clip(base + flakes + np.rot90(flakes, 2, axes=(1, 2)))


def _plasma(n, size, decay, rng):
    """``n`` plasma fractals of ``size x size`` (a power of two), by diamond-square, in [0, 1]."""
    maps = np.zeros((n, size, size))
    step, amp = size, 100.0
    while step >= 2:
        half = step // 2
        # squares: centres from the four corners (wrapping)
        corners = maps[:, 0:size:step, 0:size:step]
        mean = (corners + np.roll(corners, -1, 1) + np.roll(corners, -1, 2)
                + np.roll(np.roll(corners, -1, 1), -1, 2)) / 4
        maps[:, half:size:step, half:size:step] = mean + amp * rng.uniform(-1, 1, mean.shape)
        # diamonds: edge midpoints from their four neighbours
        for oy, ox in ((0, half), (half, 0)):
            ys, xs = np.arange(oy, size, step), np.arange(ox, size, step)
            acc = sum(maps[:, (ys[:, None] + dy) % size, (xs[None, :] + dx) % size]
                      for dy, dx in ((-half, 0), (half, 0), (0, -half), (0, half)))
            maps[:, ys[:, None], xs[None, :]] = acc / 4 + amp * rng.uniform(-1, 1, acc.shape)
        step, amp = half, amp / decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def fog(x, severity, rng):
    strength, decay = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))[severity - 1]
    n, h, w = x.shape
    size = 1 << int(np.ceil(np.log2(max(h, w))))
    peak = x.max(axis=(1, 2), keepdims=True)
    x = x + strength * _plasma(n, size, decay, rng)[:, :h, :w]
    return _clip(x * peak / (peak + strength))


def brightness(x, severity, rng):
    return _clip(x + (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1])


def contrast(x, severity, rng):
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _clip((x - mean) * c + mean)


def elastic_transform(x, severity, rng):
    magnitude, smooth = ((0.5, 3.0), (0.9, 3.0), (1.3, 2.5), (1.7, 2.5), (2.2, 2.0))[severity - 1]
    n, h, w = x.shape
    fields = ndimage.gaussian_filter(rng.uniform(-1, 1, (2, n, h, w)), (0, 0, smooth, smooth))
    fields *= magnitude / np.maximum(fields.std(axis=(2, 3), keepdims=True), 1e-12)
    b, yy, xx = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([b, yy + fields[0], xx + fields[1]])
    return _clip(ndimage.map_coordinates(x, coords, order=1, mode="reflect"))


def _area_matrix(size, small):
    """``(small, size)`` matrix averaging the source pixels under each target pixel."""
    edges = np.linspace(0, size, small + 1)
    lo, hi = np.arange(size), np.arange(1, size + 1)
    overlap = np.clip(np.minimum(hi[None], edges[1:, None]) - np.maximum(lo[None], edges[:-1, None]), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def pixelate(x, severity, rng):
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    n, h, w = x.shape
    sh, sw = max(int(h * c), 1), max(int(w * c), 1)
    small = _area_matrix(h, sh) @ x @ _area_matrix(w, sw).T
    rows = np.minimum((np.arange(h) * sh) // h, sh - 1)
    cols = np.minimum((np.arange(w) * sw) // w, sw - 1)
    return small[:, rows[:, None], cols[None, :]]


_LUMINANCE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float64)
"""The JPEG standard's luminance quantisation table (ITU T.81, Annex K)."""


def _dct_matrix(n=8):
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m  # orthonormal DCT-II: coefficients = m @ block @ m.T


def quantisation_table(quality: int) -> np.ndarray:
    """The IJG (libjpeg) scaling of the luminance table for ``quality`` in 1..100."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_LUMINANCE * scale + 50) / 100), 1, 255)


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """Baseline JPEG's lossy round trip of grayscale images ``(N, H, W)`` in [0, 1]."""
    n, h, w = x.shape
    ph, pw = -h % 8, -w % 8
    pixels = np.pad(np.round(x * 255), ((0, 0), (0, ph), (0, pw)), mode="edge") - 128
    blocks = pixels.reshape(n, (h + ph) // 8, 8, (w + pw) // 8, 8)
    d, q = _dct_matrix(), quantisation_table(quality)
    coef = np.einsum("ki,nbiBj,lj->nbkBl", d, blocks, d, optimize=True)
    coef = np.round(coef / q[None, None, :, None, :]) * q[None, None, :, None, :]
    back = np.einsum("ki,nbkBl,lj->nbiBj", d, coef, d, optimize=True).reshape(n, h + ph, w + pw)[:, :h, :w]
    return np.clip(np.round(back + 128), 0, 255) / 255


def jpeg_compression(x, severity, rng):
    return jpeg(x, (80, 65, 58, 50, 40)[severity - 1])


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur,
                            motion_blur, zoom_blur, snow, fog, brightness, contrast,
                            elastic_transform, pixelate, jpeg_compression)}
"""Each ``f(images (N, H, W) float64 in [0, 1], severity 1..5, rng) -> images``."""


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """``images`` under corruption ``name`` at ``severity``, deterministic for ``seed``.

    ``images``: ``(N, H, W)`` or ``(N, H, W, 1)``, uint8 (0..255) or float in
    ``[0, 1]``; the result has the same shape and dtype.
    """
    if name not in CORRUPTIONS:
        why = f" ({SKIPPED[name]})" if name in SKIPPED else ""
        raise ValueError(f"unknown corruption {name!r}{why}; choose one of {sorted(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    x, restore = _as_float(images)
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name), severity])
    return restore(CORRUPTIONS[name](x, severity, rng)) if len(x) else images.copy()


def corrupt_random(images: np.ndarray, seed: int = 0, names=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image under a corruption and severity drawn uniformly at random.

    Returns ``(corrupted, which, severity)``: the images (same shape and dtype),
    and per image the index into ``names`` (default all of :data:`CORRUPTIONS`)
    and the severity.
    """
    names = list(names or CORRUPTIONS)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(names), len(images))
    sev = rng.integers(1, 6, len(images))
    out = images.copy()
    for k, name in enumerate(names):
        for s in SEVERITIES:
            sel = (which == k) & (sev == s)
            if sel.any():
                out[sel] = corrupt(images[sel], name, int(s), seed=int(rng.integers(2**31)))
    return out, which, sev


def _as_float(images: np.ndarray):
    images = np.asarray(images)
    squeeze = images.ndim == 4
    if images.ndim not in (3, 4) or (squeeze and images.shape[-1] != 1):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 1) grayscale, got shape {images.shape}")
    x = images[..., 0] if squeeze else images
    is_int = np.issubdtype(images.dtype, np.integer)
    x = x.astype(np.float64) / 255.0 if is_int else x.astype(np.float64)

    def restore(y):
        y = np.round(y * 255).astype(images.dtype) if is_int else y.astype(images.dtype)
        return y[..., None] if squeeze else y

    return x, restore
