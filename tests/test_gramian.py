"""Gramian, combination and task-axis validation."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import jaxmtl
from jaxmtl.gramian import flatten_tasks, normalize_gramian
from tests.conftest import jacobians


def tree(rng, t=3):
    return {"a": rng.normal(size=(t, 2, 3)).astype(np.float32), "b": [rng.normal(size=(t, 4)).astype(np.float32)]}


def test_gramian_equals_flat_product():
    tg = tree(np.random.default_rng(0))
    j = np.asarray(flatten_tasks(tg))
    assert j.shape == (3, 10)
    np.testing.assert_allclose(jaxmtl.gramian(tg), j @ j.T, rtol=1e-5)


@given(jacobians())
def test_scaled_gramian_is_finite_and_consistent(j):
    g, s = jaxmtl.scaled_gramian(jnp.asarray(j))
    assert np.all(np.isfinite(g)) and np.isfinite(s) and s > 0
    jn = j.astype(np.float64) / float(s)
    np.testing.assert_allclose(g, jn @ jn.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g, g.T)


def test_combine_is_weighted_sum_and_keeps_dtype():
    tg = tree(np.random.default_rng(1))
    w = jnp.asarray([0.5, -1.0, 2.0])
    out = jaxmtl.combine(w, tg)
    np.testing.assert_allclose(out["a"], np.tensordot(np.asarray(w), tg["a"], 1), rtol=1e-5)
    bf = jaxmtl.combine(w, {"x": jnp.ones((3, 2), jnp.bfloat16)})
    assert bf["x"].dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(bf["x"], np.float32), 1.5)


def test_normalize_gramian_zero_and_scale():
    np.testing.assert_array_equal(normalize_gramian(jnp.zeros((2, 2))), 0.0)
    g = jnp.asarray([[2.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(normalize_gramian(g), g / 4)


def test_num_tasks_validation():
    assert jaxmtl.num_tasks({"a": jnp.ones((4, 2)), "b": jnp.ones((4,))}) == 4
    with pytest.raises(ValueError, match=r"disagree on the number of tasks: \['a'\] has 4, \['b'\] has 3"):
        jaxmtl.num_tasks({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))})
    with pytest.raises(ValueError, match="no leaves"):
        jaxmtl.num_tasks({})
    with pytest.raises(ValueError, match="different tree structures"):
        jaxmtl.num_tasks({"a": jnp.ones((2, 2))}, params={"b": jnp.ones((2,))})
    with pytest.raises(ValueError, match=r"losses has shape \(2, 1\)"):
        jaxmtl.num_tasks(jnp.ones((2, 3)), losses=jnp.ones((2, 1)))
