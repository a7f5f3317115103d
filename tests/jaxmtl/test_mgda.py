"""MGDA: published output, min-norm property, stationarity, invariances."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

import jaxmtl
from tests.conftest import REFERENCE_J, jacobians

METHOD = jaxmtl.mgda()
UPDATE = jax.jit(METHOD.update)


def mgda(j):
    return np.asarray(UPDATE(jnp.asarray(j, jnp.float32), METHOD.init(None))[0], np.float64)


def test_reference_output():
    np.testing.assert_allclose(mgda(REFERENCE_J), [0.0, 1.0, 1.0], atol=1e-4)


def test_weights_two_tasks_closed_form():
    # w1 = (|g2|^2 - g1.g2) / |g1 - g2|^2 = (38 + 22) / 100
    np.testing.assert_allclose(jaxmtl.mgda_weights(REFERENCE_J @ REFERENCE_J.T), [0.6, 0.4], atol=1e-5)


def test_orthogonal_gradients():
    # min-norm point of the segment between (1, 0) and (0, 2): (0.8, 0.4)
    np.testing.assert_allclose(mgda(np.array([[1.0, 0.0], [0.0, 2.0]])), [0.8, 0.4], rtol=1e-4)


def test_pareto_stationary_gives_zero():
    j = np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]], np.float32)  # 0 = (g1 + g2 + g3)/3
    np.testing.assert_allclose(mgda(j), 0.0, atol=1e-4)


@given(jacobians(scales=False))
def test_every_task_decreases_at_least_the_norm(j):
    d = mgda(j)
    j = j.astype(np.float64)
    # optimality of the min-norm point: g_t . d >= |d|^2 for every task
    assert np.all(j @ d >= d @ d - 1e-3 * (1 + np.linalg.norm(j) ** 2))


@given(jacobians(scales=False))
def test_permutation_invariant(j):
    perm = np.random.default_rng(1).permutation(len(j))
    np.testing.assert_allclose(mgda(j[perm]), mgda(j), rtol=1e-3, atol=1e-3 * (1 + np.abs(j).max()))


@given(jacobians(scales=False))
def test_positive_scaling_is_linear(j):
    np.testing.assert_allclose(mgda(1e-3 * j), 1e-3 * mgda(j), rtol=1e-3,
                               atol=1e-6 * (1 + np.abs(j).max()))
