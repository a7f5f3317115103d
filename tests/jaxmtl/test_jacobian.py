"""Per-task gradients: equality with per-task jax.grad, shared-only mode, chunking, aux."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl

W = {"trunk": jnp.asarray([[0.5, -1.0], [2.0, 0.3], [0.1, 0.2]]),
     "heads": [jnp.asarray([1.0, -2.0]), jnp.asarray([0.7, 0.4]), jnp.asarray([-0.3, 1.5])]}
X = jnp.asarray([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])


def losses(params, x):
    z = jnp.tanh(x @ params["trunk"])
    return jnp.stack([jnp.mean((z @ h) ** 2) for h in params["heads"]])


def test_matches_per_task_grad():
    value, grads = jax.jit(jaxmtl.value_and_jacobian(losses))(W, X)
    np.testing.assert_allclose(value, losses(W, X), rtol=1e-6)
    for t in range(3):
        ref = jax.grad(lambda p: losses(p, X)[t])(W)
        for got, exp in zip(jax.tree.leaves(jax.tree.map(lambda g: g[t], grads)), jax.tree.leaves(ref)):
            np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-7)


def test_shared_only_gives_plain_head_gradients():
    shared = {"trunk": True, "heads": False}
    value, grads = jaxmtl.value_and_jacobian(losses, shared=shared)(W, X)
    _, full = jaxmtl.value_and_jacobian(losses)(W, X)
    assert grads["trunk"].shape == (3, 3, 2)
    np.testing.assert_allclose(grads["trunk"], full["trunk"], rtol=1e-6)
    for t in range(3):
        assert grads["heads"][t].shape == (2,)
        np.testing.assert_allclose(grads["heads"][t], full["heads"][t][t], rtol=1e-6)


def test_path_mask_and_chunking_agree():
    mask = jaxmtl.path_mask(lambda path: path.startswith("trunk"))
    _, a = jaxmtl.value_and_jacobian(losses, shared=mask)(W, X)
    _, b = jax.jit(jaxmtl.value_and_jacobian(losses, shared=mask, chunk_size=2))(W, X)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_has_aux_and_jacobian_alias():
    def with_aux(params, x):
        return losses(params, x), {"n": x.shape[0]}

    (value, aux), grads = jaxmtl.value_and_jacobian(with_aux, has_aux=True)(W, X)
    assert aux == {"n": 2} and value.shape == (3,)
    grads2, aux2 = jaxmtl.jacobian(with_aux, has_aux=True)(W, X)
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(x, y), grads, grads2)


def test_non_vector_loss_raises():
    with pytest.raises(ValueError, match="1-D array of task losses"):
        jaxmtl.value_and_jacobian(lambda p, x: jnp.sum(losses(p, x)))(W, X)


def test_bad_mask_raises():
    with pytest.raises(ValueError, match="shared mask does not match"):
        jaxmtl.value_and_jacobian(losses, shared={"other": True})(W, X)


@pytest.mark.parametrize("chunk", [None, 1, 2, "auto", 8])
def test_chunk_sizes_agree(chunk):
    _, ref = jaxmtl.value_and_jacobian(losses, chunk_size=None)(W, X)
    _, got = jax.jit(jaxmtl.value_and_jacobian(losses, chunk_size=chunk))(W, X)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), ref, got)


@pytest.mark.parametrize("bad", [0, -2, "fast"])
def test_bad_chunk_size_raises(bad):
    with pytest.raises(ValueError, match="chunk_size must be"):
        jaxmtl.value_and_jacobian(losses, chunk_size=bad)(W, X)
