"""DeepLabV3+ (Chen et al. 2018) with a dilated ResNet encoder and one ASPP/decoder head per task.

The multi-task variant of LibMTL (Lin & Zhang 2023) and of paper A's
Cityscapes/NYUv2 runs: the dilated ResNet-18/50 encoder (output stride 8 by
default) is shared; each task has its own head: ASPP (a 1x1 branch, three 3x3
atrous branches at ``rates``, image pooling; ``aspp_channels`` each, projected to
``aspp_channels``), upsampled to the stride-4 low-level features (first ResNet
stage, reduced to ``low_channels`` by a 1x1 conv), concatenated, two 3x3 convs,
a 1x1 conv to the task's channels and a bilinear upsampling x4 to the input size.

Parameters: ``params["encoder"]`` shared, ``params["head_<t>"]`` task ``t``'s.
``encode`` returns ``(low, high)`` features, ``decode`` the per-task outputs
``(B, H, W, channels[t])`` (logits for segmentation, raw values for depth and
normals: the losses normalise normals themselves).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmtl.models.resnet import ResNet, batch_norm


def resize(x, shape):
    """Bilinear resize of ``(B, h, w, C)`` to spatial ``shape``."""
    return jax.image.resize(x, (x.shape[0], *shape, x.shape[-1]), "bilinear")


class ConvBNReLU(nn.Module):
    features: int
    kernel: int = 3
    dilation: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        pad = self.dilation * (self.kernel // 2)
        x = nn.Conv(self.features, (self.kernel,) * 2, padding=pad, kernel_dilation=self.dilation,
                    use_bias=False)(x)
        return nn.relu(batch_norm(train)(x))


class ASPP(nn.Module):
    channels: int = 256
    rates: tuple[int, ...] = (12, 24, 36)

    @nn.compact
    def __call__(self, x, train: bool = False):
        branches = [ConvBNReLU(self.channels, 1)(x, train)]
        branches += [ConvBNReLU(self.channels, 3, r)(x, train) for r in self.rates]
        pooled = ConvBNReLU(self.channels, 1)(jnp.mean(x, axis=(1, 2), keepdims=True), train)
        branches.append(jnp.broadcast_to(pooled, (*x.shape[:3], self.channels)))
        return ConvBNReLU(self.channels, 1)(jnp.concatenate(branches, axis=-1), train)


class DeepLabHead(nn.Module):
    """ASPP + the V3+ decoder for one task."""

    channels: int
    aspp_channels: int = 256
    low_channels: int = 48
    rates: tuple[int, ...] = (12, 24, 36)

    @nn.compact
    def __call__(self, features, train: bool = False):
        low, high = features
        y = resize(ASPP(self.aspp_channels, self.rates)(high, train), low.shape[1:3])
        y = jnp.concatenate([y, ConvBNReLU(self.low_channels, 1)(low, train)], axis=-1)
        y = ConvBNReLU(self.aspp_channels)(ConvBNReLU(self.aspp_channels)(y, train), train)
        y = nn.Conv(self.channels, (1, 1))(y)
        return resize(y, (4 * low.shape[1], 4 * low.shape[2]))


class DeepLabV3Plus(nn.Module):
    """Shared dilated ResNet + one DeepLabV3+ head per task; ``channels[t]`` outputs for task ``t``.

    ``backbone``: ``"resnet18"`` or ``"resnet50"``; the input's height and width
    must be multiples of ``output_stride`` (128x256 and 288x384 are).
    """

    channels: tuple[int, ...] = (7, 1)
    backbone: str = "resnet50"
    width: int = 64
    output_stride: int = 8
    aspp_channels: int = 256
    low_channels: int = 48

    def setup(self):
        arch = {"resnet18": ((2, 2, 2, 2), "basic"), "resnet50": ((3, 4, 6, 3), "bottleneck")}
        if self.backbone not in arch:
            raise ValueError(f"backbone must be one of {sorted(arch)}, got {self.backbone!r}")
        stages, block = arch[self.backbone]
        self.encoder = ResNet(stages, block, self.width, self.output_stride)
        rates = (12, 24, 36) if self.output_stride == 8 else (6, 12, 18)
        self.head = [DeepLabHead(c, self.aspp_channels, self.low_channels, rates) for c in self.channels]

    def encode(self, x, train: bool = False):
        """``(low, high)``: first- and last-stage features (strides 4 and ``output_stride``)."""
        features = self.encoder(x, train)
        return features[0], features[-1]

    def decode(self, z, train: bool = False):
        return tuple(h(z, train) for h in self.head)

    def __call__(self, x, train: bool = False):
        return self.decode(self.encode(x, train), train)
