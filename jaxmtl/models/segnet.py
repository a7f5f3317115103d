"""SegNet (Badrinarayanan et al. 2017), the multi-task variant of MTAN (Liu et al. 2019) and LibMTL.

Shared encoder-decoder: five encoder blocks of 3x3 conv-BN-ReLU layers (2, 2,
3, 3, 3 layers; ``filters`` (64, 128, 256, 512, 512) output channels), each followed by a
2x2 max-pool that remembers where the maxima were; the decoder mirrors it,
un-pooling to those positions. Each task has its own prediction head: a 3x3
conv (``filters[0]`` channels) and a 1x1 conv to the task's ``channels[t]``
outputs (MTAN's ``pred_task`` layers). Input height and width must be multiples of 32.

Parameters: ``params["encoder"]`` (the whole shared encoder-decoder) and
``params["head_<t>"]``; ``encode`` returns the decoder's full-resolution
features ``(B, H, W, filters[0])``, ``decode`` the per-task outputs
``(B, H, W, channels[t])``.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmtl.models.deeplab import ConvBNReLU

LAYERS = (2, 2, 3, 3, 3)


def max_pool_with_argmax(x):
    """2x2/2 max-pool of ``(B, H, W, C)`` and the one-hot position ``(B, H/2, W/2, 4, C)`` of each max."""
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"SegNet pools 2x2: height and width must be even at every scale, got {h}x{w}")
    windows = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4, c)
    where = jax.nn.one_hot(jnp.argmax(windows, axis=3), 4, axis=3, dtype=x.dtype)
    return jnp.max(windows, axis=3), jax.lax.stop_gradient(where)


def max_unpool(x, where):
    """Inverse of :func:`max_pool_with_argmax`: each value back at its max's position, zeros elsewhere."""
    b, h, w, _, c = where.shape
    out = (x[:, :, :, None, :] * where).reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return out.reshape(b, 2 * h, 2 * w, c)


class SegNetTrunk(nn.Module):
    filters: tuple[int, ...] = (64, 128, 256, 512, 512)

    @nn.compact
    def __call__(self, x, train: bool = False):
        if len(self.filters) != len(LAYERS):
            raise ValueError(f"SegNet has {len(LAYERS)} blocks: filters needs {len(LAYERS)} entries")
        positions = []
        for f, n in zip(self.filters, LAYERS):
            for _ in range(n):
                x = ConvBNReLU(f)(x, train)
            x, where = max_pool_with_argmax(x)
            positions.append(where)
        outs = list(self.filters[:-1])[::-1] + [self.filters[0]]   # each decoder block's output width
        for i, (where, n) in enumerate(zip(positions[::-1], LAYERS[::-1])):
            x = max_unpool(x, where)
            for _ in range(n):             # as MTAN: the block's first conv sets its output width
                x = ConvBNReLU(outs[i])(x, train)
        return x


class SegNetHead(nn.Module):
    channels: int
    features: int

    @nn.compact
    def __call__(self, x):
        return nn.Conv(self.channels, (1, 1))(nn.Conv(self.features, (3, 3), padding=1)(x))


class SegNet(nn.Module):
    """Shared SegNet + one prediction head per task; ``channels[t]`` outputs for task ``t``."""

    channels: tuple[int, ...] = (13, 1, 3)
    filters: tuple[int, ...] = (64, 128, 256, 512, 512)

    def setup(self):
        self.encoder = SegNetTrunk(self.filters)
        self.head = [SegNetHead(c, self.filters[0]) for c in self.channels]

    def encode(self, x, train: bool = False):
        return self.encoder(x, train)

    def decode(self, z, train: bool = False):
        return tuple(h(z) for h in self.head)

    def __call__(self, x, train: bool = False):
        return self.decode(self.encode(x, train), train)
