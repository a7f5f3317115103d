"""The Gramian-only path equals the Jacobian path followed by the same weighting."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl
from tests.jaxmtl.test_jacobian import W, X, losses

SHARED = {"trunk": True, "heads": False}


@pytest.mark.parametrize("chunk", [None, 1, "auto"])
@pytest.mark.parametrize("weighting", [jaxmtl.upgrad_weights, jaxmtl.mgda_weights,
                                       functools.partial(jaxmtl.cagrad_weights, c=0.5)])
def test_matches_jacobian_path(weighting, chunk):
    value, w, grads = jax.jit(jaxmtl.weighted_value_and_grad(losses, weighting, shared=SHARED,
                                                             chunk_size=chunk))(W, X)
    ref_value, jac = jaxmtl.value_and_jacobian(losses, shared=SHARED)(W, X)
    ref_w = weighting(jaxmtl.gramian(jac["trunk"]))
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    np.testing.assert_allclose(w, ref_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads["trunk"], jaxmtl.combine(ref_w, jac["trunk"]), rtol=1e-4, atol=1e-6)
    for t in range(3):  # heads: plain gradients, as under jaxmtl.partition
        np.testing.assert_allclose(grads["heads"][t], jac["heads"][t], rtol=1e-6)


def test_weight_heads_gives_gradient_of_weighted_sum():
    weighting = lambda g: jnp.asarray([0.2, 1.0, 3.0])
    value, w, grads = jaxmtl.weighted_value_and_grad(losses, weighting, shared=SHARED,
                                                     weight_heads=True)(W, X)
    ref = jax.grad(lambda p: jnp.dot(w, losses(p, X)))(W)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, ref)


def test_has_aux_and_full_jacobian_default():
    aux_fn = lambda p, x: (losses(p, x), {"n": x.shape[0]})
    (value, aux), w, grads = jaxmtl.weighted_value_and_grad(aux_fn, jaxmtl.upgrad_weights, has_aux=True)(W, X)
    assert aux == {"n": 2} and w.shape == (3,)
    _, jac = jaxmtl.value_and_jacobian(losses)(W, X)
    ref_w = jaxmtl.upgrad_weights(jaxmtl.gramian(jac))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads,
                 jaxmtl.combine(ref_w, jac))


def test_errors():
    with pytest.raises(ValueError, match=r"weighting returned shape \(2,\); expected \(3,\)"):
        jaxmtl.weighted_value_and_grad(losses, lambda g: jnp.ones(2))(W, X)
    with pytest.raises(ValueError, match="selects no leaf"):
        jaxmtl.weighted_value_and_grad(losses, jaxmtl.upgrad_weights, shared=False)(W, X)
    with pytest.raises(ValueError, match="1-D array of task losses"):
        jaxmtl.weighted_value_and_grad(lambda p, x: losses(p, x).sum(), jaxmtl.upgrad_weights)(W, X)
