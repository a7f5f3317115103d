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


def test_mixed_lenet_heads_and_split():
    import jax
    import jax.numpy as jnp

    from jaxmtl.models import MixedLeNet, shared_mask, task_of

    model = MixedLeNet(heads=("classify", "reconstruct"), dropout=0.5)
    x = jnp.ones((3, 28, 28, 1))
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    logits, image = model.apply({"params": params}, x)
    assert logits.shape == (3, 10) and image.shape == (3, 28, 28)
    # paper C's decoder: 50 -> 256 -> 784, a linear output (its targets are normalised images)
    assert params["head_1"]["Dense_1"]["kernel"].shape == (50, 256) and float(image.min()) < 0.0
    assert jax.tree.leaves(task_of(params)) and set(jax.tree.leaves(task_of(params))) == {-1, 0, 1}
    assert any(jax.tree.leaves(shared_mask(params))) and not all(jax.tree.leaves(shared_mask(params)))
    a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})[1]
    assert not jnp.allclose(a, image)                      # dropout active in training
