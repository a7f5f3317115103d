"""Gramian, combination and task-axis validation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import jaxmtl
from jaxmtl.gramians import DEAD, as_scaled, flatten_tasks
from tests.conftest import jacobians

# jitted once per Jacobian shape: the property tests then cost a call per example, not a dispatch per op
scaled_gramian = jax.jit(jaxmtl.scaled_gramian)
cosine_form = jax.jit(lambda j: jaxmtl.cosine_form(jaxmtl.scaled_gramian(j)))


def tree(rng, t=3):
    return {"a": rng.normal(size=(t, 2, 3)).astype(np.float32), "b": [rng.normal(size=(t, 4)).astype(np.float32)]}


def test_gramian_equals_flat_product():
    tg = tree(np.random.default_rng(0))
    j = np.asarray(flatten_tasks(tg))
    assert j.shape == (3, 10)
    np.testing.assert_allclose(jaxmtl.gramian(tg), j @ j.T, rtol=1e-5)


@given(jacobians())
def test_scaled_gramian_is_finite_and_consistent(j):
    g, s = scaled_gramian(jnp.asarray(j))
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


@given(jacobians())
def test_cosine_form_reconstructs_the_gramian(j):
    cf = cosine_form(jnp.asarray(j))
    jd = j.astype(np.float64)
    norms = np.linalg.norm(jd, axis=1)
    alive = norms > DEAD * max(norms.max(), 1e-300)
    np.testing.assert_array_equal(cf.alive, alive)
    np.testing.assert_allclose(np.diag(cf.cos), 1.0, rtol=1e-6)
    np.testing.assert_allclose(cf.norms * float(cf.scale), np.where(alive, norms, 0.0), rtol=1e-4)
    u = jd[alive] / norms[alive, None]
    np.testing.assert_allclose(np.asarray(cf.cos)[np.ix_(alive, alive)], u @ u.T, atol=1e-4)


def test_cosine_form_of_graded_norms_is_exact():
    # norms 6e3, 5e-2, 6 (losses in different units) and a 1e-12 task: cosines unaffected
    rng = np.random.default_rng(0)
    u = rng.normal(size=(4, 20))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    norms = np.array([6e3, 5e-2, 6.0, 6e-9])
    cf = jaxmtl.cosine_form(jaxmtl.scaled_gramian(jnp.asarray(norms[:, None] * u, jnp.float32)))
    np.testing.assert_allclose(cf.cos, u @ u.T, atol=2e-6)
    np.testing.assert_allclose(cf.norms * float(cf.scale), norms, rtol=1e-5)
    np.testing.assert_allclose(cf.from_units(np.ones(4)), float(cf.scale) / norms, rtol=1e-5)


def test_as_scaled_accepts_arrays_and_checks_shape():
    g = jnp.asarray([[4.0, 2.0], [2.0, 9.0]])
    sg = as_scaled(g)
    np.testing.assert_allclose(sg.gram * sg.scale**2, g, rtol=1e-6)
    assert as_scaled(sg) is sg
    with pytest.raises(ValueError, match="square"):
        as_scaled(jnp.ones((2, 3)))


def test_integer_gradients_give_a_float_update():
    out = jaxmtl.combine(jnp.asarray([0.5, 0.5]), {"w": jnp.asarray([[1, 2], [2, 3]])})
    assert out["w"].dtype == jnp.float32
    np.testing.assert_allclose(out["w"], [1.5, 2.5])


def test_num_tasks_validation():
    assert jaxmtl.num_tasks({"a": jnp.ones((4, 2)), "b": jnp.ones((4,))}) == 4
    with pytest.raises(ValueError, match=r"disagree on the number of tasks: \['a'\] has 4, \['b'\] has 3"):
        jaxmtl.num_tasks({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))})
    with pytest.raises(ValueError, match="no leaves"):
        jaxmtl.num_tasks({})
    with pytest.raises(ValueError, match="different tree structures"):
        jaxmtl.num_tasks({"a": jnp.ones((2, 2))}, params={"b": jnp.ones((2,))})
    with pytest.raises(ValueError, match="no task axis: leaf \\['w'\\] has shape \\(4, 2\\), the shape of its parameter"):
        jaxmtl.num_tasks({"w": jnp.ones((4, 2))}, params={"w": jnp.zeros((4, 2))})
    with pytest.raises(ValueError, match="plain gradients have none.*jaxmtl.multi_steps"):
        jaxmtl.num_tasks({"a": jnp.ones((4, 2)), "b": jnp.ones((2,))})


def test_a_mixed_tree_without_partition_names_partition():
    """value_and_jacobian(..., shared=mask) stacks the shared leaves only: a method given that tree
    without jaxmtl.partition is told to use it, with or without params."""
    params = {"trunk": jnp.zeros((4, 3)), "head": jnp.zeros((3,))}
    mixed = {"trunk": jnp.ones((2, 4, 3)), "head": jnp.ones((3,))}
    tx = jaxmtl.upgrad()
    with pytest.raises(ValueError, match=r"leaves \['head'\] have their parameter's shape.*"
                                         r"wrap the method in jaxmtl.partition\(method, mask\)"):
        tx.update(mixed, tx.init(params), params)
    with pytest.raises(ValueError, match=r"disagree on the number of tasks.*jaxmtl.partition\(method, mask\)"):
        tx.update(mixed, tx.init(params))
    # partition takes the same tree
    updates, _ = jaxmtl.partition(tx, {"trunk": True, "head": False}).update(
        mixed, jaxmtl.partition(tx, {"trunk": True, "head": False}).init(params), params)
    np.testing.assert_allclose(updates["head"], mixed["head"])
    with pytest.raises(ValueError, match=r"losses has shape \(2, 1\)"):
        jaxmtl.num_tasks(jnp.ones((2, 3)), losses=jnp.ones((2, 1)))
