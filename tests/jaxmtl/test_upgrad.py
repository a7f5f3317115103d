"""UPGrad: published output, non-conflict, permutation invariance, scale linearity."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

import jaxmtl
from tests.conftest import REFERENCE_J, jacobians

METHOD = jaxmtl.upgrad()
UPDATE = jax.jit(METHOD.update)
WEIGHTS = jax.jit(jaxmtl.upgrad_weights)


def upgrad(j):
    return np.asarray(UPDATE(jnp.asarray(j, jnp.float32), METHOD.init(None))[0], np.float64)


def test_reference_output():
    # TorchJD's published output includes its ridge on the trace-normalised Gramian; the exact
    # (ridge-free) answer is (11/38 + 1/2 ... ) = (0.2924, 1.9006, 1.9006), jaxmtl's 0.2925
    np.testing.assert_allclose(upgrad(REFERENCE_J), [0.2929, 1.9004, 1.9004], atol=5e-4)
    np.testing.assert_allclose(upgrad(REFERENCE_J), [0.2924, 1.9006, 1.9006], atol=2e-4)


def test_closed_form_without_regularisation():
    # two tasks: w = (1/2)(e1 + (g1.g2-/|g2|^2) e2 ...) worked out by hand for G = [[18,-22],[-22,38]]
    w = jaxmtl.upgrad_weights(jnp.asarray(REFERENCE_J @ REFERENCE_J.T), reg=0.0)
    np.testing.assert_allclose(w, [0.5 + 11 / 18, 0.5 + 11 / 38], rtol=1e-5)


def test_orthogonal_gradients_are_averaged():
    j = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    np.testing.assert_allclose(upgrad(j), [0.5, 1.0], rtol=1e-3)


def test_opposite_gradients_give_zero():
    np.testing.assert_allclose(upgrad(np.array([[1.0, 2.0], [-1.0, -2.0]])), 0.0, atol=1e-5)


@given(jacobians(scales=False))
def test_never_conflicts(j):
    # KKT of the regularised QPs: (J d)_t >= -reg * |g_t|^2 * w_t (exactly >= 0 when reg = 0)
    d = upgrad(j)
    j = j.astype(np.float64)
    w = np.asarray(WEIGHTS(jnp.asarray(j @ j.T, jnp.float32)), np.float64)
    slack = 1e-4 * np.sum(j**2, axis=1) * np.abs(w) + 1e-4 * (1e-3 + np.linalg.norm(j) * np.linalg.norm(d))
    assert np.all(j @ d >= -slack)


@given(jacobians(scales=False))
def test_permutation_invariant(j):
    perm = np.random.default_rng(0).permutation(len(j))
    np.testing.assert_allclose(upgrad(j[perm]), upgrad(j), rtol=1e-3, atol=1e-4 * (1 + np.abs(j).max()))


@given(jacobians(scales=False))
def test_positive_scaling_is_linear(j):
    np.testing.assert_allclose(upgrad(1e3 * j), 1e3 * upgrad(j), rtol=1e-3,
                               atol=1e-1 * (1 + np.abs(j).max()))
