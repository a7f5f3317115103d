"""RotoGrad's per-task rotations of the shared representation, as a Flax module.

See :mod:`jaxmtl.aggregators.rotograd` for the method (Javaloy & Valera 2022)
and :func:`jaxmtl.aggregators.rotograd.make_rotograd_step` for the train step.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmtl.aggregators.rotograd import rotate, rotation_matrices


class Rotations(nn.Module):
    """``z -> (R_1 z, ..., R_T z)``: one learned rotation of the features per task.

    The parameter ``skew`` ``(T, d, d)`` (zeros: identity rotations) gives
    ``R_k = expm(A_k)`` or the Cayley transform of ``A_k``, with ``A_k`` the
    skew-symmetric matrix of its strict upper triangle
    (:func:`jaxmtl.aggregators.rotograd.rotation_matrices`). Features ``(..., d)``
    give ``(T, ..., d)``; head ``k`` reads entry ``k``.

    As in the official code the forward pass uses the rotations held fixed
    (``stop_gradient``): the task losses do not train them; their gradient comes
    from :func:`jaxmtl.aggregators.rotograd.rotation_loss`. Keep ``skew`` in its own
    parameter tree with its own (slower) optimiser, as
    :func:`~jaxmtl.aggregators.rotograd.make_rotograd_step` expects.
    """

    num_tasks: int
    size: int
    parametrization: str = "expm"

    def setup(self):
        self.skew = self.param("skew", nn.initializers.zeros, (self.num_tasks, self.size, self.size),
                               jnp.float32)

    def matrices(self) -> jax.Array:
        """The rotation matrices ``(T, d, d)`` (differentiable in ``skew``)."""
        return rotation_matrices(self.skew, self.parametrization)

    def __call__(self, z: jax.Array) -> jax.Array:
        if z.shape[-1] != self.size:
            raise ValueError(f"Rotations of size {self.size} got features of shape {z.shape}")
        return rotate(jax.lax.stop_gradient(self.matrices()), z)
