"""A small trunk-and-heads Flax model with MixedLeNet's layout (``encoder``, ``head_<t>``): for tests of
jitted training steps that need the layout, not the convolutions (seconds to compile, not tens)."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxmtl import metrics as M
from jaxmtl.data import Task

SMALL_TASKS = (Task("CL", M.cross_entropy, (M.accuracy(),), "label_l"),
               Task("RR", M.squared_error, (M.reconstruction_error(),), "target"))
"""A classification and a reconstruction task, as paper C's CL+RR."""


class _Trunk(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.relu(nn.Dense(8)(x.reshape((x.shape[0], -1))))


class _Head(nn.Module):
    out: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z, train: bool = False):
        return nn.Dense(self.out)(nn.Dropout(self.dropout, deterministic=not train)(nn.relu(nn.Dense(6)(z))))


class SmallTwoHeads(nn.Module):
    """``x (B, 4, 4, 1) -> (logits (B, 10), image (B, 4, 4))``."""

    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        z = _Trunk(name="encoder")(x, train)
        logits = _Head(10, self.dropout, name="head_0")(z, train)
        image = _Head(16, self.dropout, name="head_1")(z, train).reshape((x.shape[0], 4, 4))
        return logits, image


def small_batch(seed: int, n: int = 6) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.normal(size=(n, 4, 4, 1)), jnp.float32),
            "label_l": jnp.asarray(rng.integers(0, 10, n)),
            "target": jnp.asarray(rng.normal(size=(n, 4, 4)), jnp.float32)}
