"""MultiLeNet shapes, parameter layout and the shared mask."""
from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxmtl
from jaxmtl.models import MultiLeNet, shared_mask


def test_shapes_and_mask():
    model = MultiLeNet(num_tasks=3, num_classes=7, dropout=0.5)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 36, 36, 1)))["params"]
    assert set(params) == {"encoder", "head_0", "head_1", "head_2"}
    out = model.apply({"params": params}, jnp.ones((4, 36, 36, 1)), train=True,
                      rngs={"dropout": jax.random.PRNGKey(1)})
    assert out.shape == (3, 4, 7)
    mask = jaxmtl.resolve_mask(shared_mask, params)
    assert all(jax.tree.leaves(mask["encoder"])) and not any(jax.tree.leaves(mask["head_1"]))


def test_eval_is_deterministic_with_dropout():
    model = MultiLeNet(dropout=0.5)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
    x = jnp.ones((2, 28, 28, 1))
    a = model.apply({"params": params}, x)
    b = model.apply({"params": params}, x)
    assert jnp.array_equal(a, b)
