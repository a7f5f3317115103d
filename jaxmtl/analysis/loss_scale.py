"""Loss-scale probes (Paper A, A2): how far two trainings' parameters drifted apart."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.masking import Mask, resolve_mask


def relative_difference(params: Any, reference: Any, select: Mask = None) -> jax.Array:
    """``max |params - reference| / max |reference|`` over the ``select``-ed leaves.

    The infinity norm of the difference relative to the infinity norm of the
    reference, so a value near float32's epsilon means "equal up to rounding"
    and a value near 1 means "as different as the parameters are large" (0 when
    both are zero, ``inf`` when only the reference is). ``select`` is a mask (see
    :mod:`jaxmtl.masking`; ``None`` takes every leaf). Jit-compatible; computed
    in float32 (float64 when the inputs are).
    """
    if jax.tree.structure(params) != jax.tree.structure(reference):
        raise ValueError("params and reference have different tree structures")
    mask = jax.tree.leaves(resolve_mask(select, reference))
    pairs = [(a, b) for a, b, m in zip(jax.tree.leaves(params), jax.tree.leaves(reference), mask) if m]
    if not pairs:
        raise ValueError("the mask selects no parameter")
    for a, b in pairs:
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"leaf shapes differ: {jnp.shape(a)} vs {jnp.shape(b)}")
    dtype = jnp.result_type(jnp.float32, *[b for _, b in pairs])
    peak = lambda xs: jnp.max(jnp.stack([jnp.max(jnp.abs(jnp.asarray(x, dtype)), initial=0.0) for x in xs]))
    diff = peak([jnp.asarray(a, dtype) - jnp.asarray(b, dtype) for a, b in pairs])
    scale = peak([b for _, b in pairs])
    return jnp.where(scale > 0, diff / jnp.where(scale > 0, scale, 1.0), jnp.where(diff > 0, jnp.inf, 0.0))
