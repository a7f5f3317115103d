"""ResNet trunks (He et al. 2016) with optional dilation, and the CelebA model: a ResNet-18
trunk with one linear head per attribute.

:class:`ResNet` returns the features of its four stages. ``block="basic"`` with
``stages=(2, 2, 2, 2)`` is ResNet-18, ``block="bottleneck"`` with ``(3, 4, 6, 3)``
ResNet-50; ``width`` (64) scales every stage. ``output_stride`` 8 or 16 replaces
the strides of the last two or last stage by dilation (the dilated encoder of
DeepLab, Chen et al. 2017/2018). ``small_input`` swaps the 7x7/2 stem and max-pool
for one 3x3/1 convolution (64x64 CelebA images, as in CIFAR ResNets).

:class:`ResNetHeads` (CelebA, 40 tasks, as in Sener & Koltun 2018): the trunk,
global average pooling, and a ``Dense(1)`` logit per task. Parameters:
``params["encoder"]`` shared, ``params["head_<t>"]`` task ``t``'s
(:func:`jaxmtl.models.shared_mask`, :func:`jaxmtl.models.task_of`);
``encode``/``decode`` split the model at the pooled features (the
representation of :func:`jaxmtl.representation_gramian`).
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

BLOCKS = ("basic", "bottleneck")


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.1 there, 0.9 here; eps 1e-5)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


class BasicBlock(nn.Module):
    features: int
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        d = self.dilation
        y = nn.Conv(self.features, (3, 3), self.stride, padding=d, kernel_dilation=d, use_bias=False)(x)
        y = nn.relu(batch_norm(train)(y))
        y = nn.Conv(self.features, (3, 3), padding=d, kernel_dilation=d, use_bias=False)(y)
        y = batch_norm(train)(y)
        if x.shape[-1] != self.features or self.stride != 1:
            x = batch_norm(train)(nn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    features: int
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        d, out = self.dilation, 4 * self.features
        y = nn.relu(batch_norm(train)(nn.Conv(self.features, (1, 1), use_bias=False)(x)))
        y = nn.Conv(self.features, (3, 3), self.stride, padding=d, kernel_dilation=d, use_bias=False)(y)
        y = nn.relu(batch_norm(train)(y))
        y = batch_norm(train)(nn.Conv(out, (1, 1), use_bias=False)(y))
        if x.shape[-1] != out or self.stride != 1:
            x = batch_norm(train)(nn.Conv(out, (1, 1), self.stride, use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """Returns the four stages' features ``[c1, c2, c3, c4]`` of images ``(B, H, W, 3)``."""

    stages: tuple[int, ...] = (2, 2, 2, 2)
    block: str = "basic"
    width: int = 64
    output_stride: int = 32
    small_input: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {self.block!r}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if len(self.stages) != 4:
            raise ValueError(f"a ResNet has 4 stages, got {self.stages}")
        block = BasicBlock if self.block == "basic" else Bottleneck
        if self.small_input:
            x = nn.Conv(self.width, (3, 3), padding=1, use_bias=False)(x)
            x = nn.relu(batch_norm(train)(x))
        else:
            x = nn.Conv(self.width, (7, 7), 2, padding=3, use_bias=False)(x)
            x = nn.relu(batch_norm(train)(x))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        dilated = {8: 2, 16: 1, 32: 0}[self.output_stride]   # how many of the last stages dilate
        dilation, features = 1, []
        for i, n in enumerate(self.stages):
            stride, previous = (1 if i == 0 else 2), dilation
            if i >= 4 - dilated:          # as torchvision: the first block keeps the previous dilation
                dilation, stride = dilation * 2, 1
            for j in range(n):
                x = block(self.width * 2 ** i, stride if j == 0 else 1,
                          previous if j == 0 else dilation)(x, train)
            features.append(x)
        return features


class ResNetHeads(nn.Module):
    """ResNet trunk + one linear logit per task: a tuple of ``num_tasks`` arrays ``(B,)``."""

    num_tasks: int = 40
    stages: tuple[int, ...] = (2, 2, 2, 2)
    width: int = 64
    small_input: bool = True

    def setup(self):
        self.encoder = ResNet(self.stages, "basic", self.width, small_input=self.small_input)
        self.head = [nn.Dense(1) for _ in range(self.num_tasks)]

    def encode(self, x, train: bool = False):
        """Globally average-pooled last-stage features ``(B, 8 * width)``."""
        return jnp.mean(self.encoder(x, train)[-1], axis=(1, 2))

    def decode(self, z, train: bool = False):
        """One logit ``(B,)`` per task from pooled features."""
        return tuple(h(z)[:, 0] for h in self.head)

    def __call__(self, x, train: bool = False):
        return self.decode(self.encode(x, train), train)
