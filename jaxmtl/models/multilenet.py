"""MultiLeNet: the shared LeNet encoder with one MLP head per task.

Sener & Koltun (2018), the Multi-MNIST model used by Paper C (Gama & Grassi), as
its official ``models/multi_lenet.py``: encoder ``conv5x5(10) - maxpool2 - relu -
conv5x5(20) - dropout - maxpool2 - relu - dense(50) - relu``; each head
``dense(50) - relu - dropout - dense(classes)``. Dropout is element-wise
(PyTorch's ``nn.Dropout``, which paper C chose over the channel dropout of Sener
& Koltun's code), one rate for the encoder and every head; at rate 0 it is the
identity.
Parameters: ``params["encoder"]`` is shared, ``params["head_<t>"]`` belongs to
task ``t`` (see :func:`shared_mask`).

:class:`MixedLeNet` has the same encoder with a head per task of either kind,
``'classify'`` (the head above) or ``'reconstruct'`` (paper C's reconstruction
tasks: ``dense(256) - relu - dropout - dense(H * W)``, a linear output: the
targets are normalised images).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmtl.masking import path_mask


class Encoder(nn.Module):
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.max_pool(nn.Conv(10, (5, 5), padding="VALID")(x), (2, 2), (2, 2)))
        x = nn.Conv(20, (5, 5), padding="VALID")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.relu(nn.max_pool(x, (2, 2), (2, 2)))
        return nn.relu(nn.Dense(50)(x.reshape((x.shape[0], -1))))


class Head(nn.Module):
    num_classes: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z, train: bool = False):
        # the output layer is created first (Dense_0), as it always was: its name sets its initial draw
        out, hidden = nn.Dense(self.num_classes), nn.Dense(50)
        return out(nn.Dropout(self.dropout, deterministic=not train)(nn.relu(hidden(z))))


class MultiLeNet(nn.Module):
    """Returns logits ``(T, B, num_classes)`` for images ``(B, H, W, C)``."""

    num_tasks: int = 2
    num_classes: int = 10
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        z = Encoder(self.dropout, name="encoder")(x, train)
        return jnp.stack([Head(self.num_classes, self.dropout, name=f"head_{t}")(z, train)
                          for t in range(self.num_tasks)])


class Decoder(nn.Module):
    shape: tuple[int, int]
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z, train: bool = False):
        h, w = self.shape
        out, hidden = nn.Dense(h * w), nn.Dense(256)   # Dense_0 the output layer, as in the classification head
        return out(nn.Dropout(self.dropout, deterministic=not train)(nn.relu(hidden(z)))).reshape((z.shape[0], h, w))


HEAD_KINDS = ("classify", "reconstruct")


class MixedLeNet(nn.Module):
    """Returns a tuple with one output per head: logits ``(B, num_classes)`` for
    ``'classify'``, an image ``(B, H, W)`` (``H, W`` of the input) for ``'reconstruct'``."""

    heads: tuple[str, ...] = ("classify", "reconstruct")
    num_classes: int = 10
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        unknown = set(self.heads) - set(HEAD_KINDS)
        if unknown:
            raise ValueError(f"unknown head kinds {sorted(unknown)}; use {HEAD_KINDS}")
        z = Encoder(self.dropout, name="encoder")(x, train)
        return tuple(Head(self.num_classes, self.dropout, name=f"head_{t}")(z, train) if kind == "classify"
                     else Decoder(x.shape[1:3], self.dropout, name=f"head_{t}")(z, train)
                     for t, kind in enumerate(self.heads))


shared_mask = path_mask(lambda path: "encoder" in path.split("/"))
"""Mask selecting the encoder parameters of a :class:`MultiLeNet` (the shared ones)."""


def task_of(params):
    """Task index of every leaf: ``t`` for ``head_<t>``, -1 for the shared encoder."""

    def owner(path, _):
        top = str(getattr(path[0], "key", path[0]))
        return int(top.split("_")[1]) if top.startswith("head_") else -1

    return jax.tree_util.tree_map_with_path(owner, params)
