"""Properties every jaxmtl method must have, applied to each method in turn."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given

import jaxmtl
from tests.conftest import jacobians

FACTORIES = {
    "linear": jaxmtl.linear,
    "linear_mean": lambda **kw: jaxmtl.linear(reduction="mean", **kw),
    "mgda": jaxmtl.mgda,
    "pcgrad": jaxmtl.pcgrad,
    "upgrad": jaxmtl.upgrad,
}
METHODS = {name: make() for name, make in FACTORIES.items()}
JITTED = {name: jax.jit(m.update) for name, m in METHODS.items()}


def aggregate(name, j, **extra):
    m = METHODS[name]
    out, _ = JITTED[name](jnp.asarray(j), m.init(None), **extra)
    return np.asarray(out, np.float64)


@pytest.mark.parametrize("name", METHODS)
@given(j=jacobians())
def test_output_is_finite(name, j):
    out = aggregate(name, j)
    assert out.shape == j.shape[1:]
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("j", [
    np.zeros((3, 4)),                                   # zero Jacobian
    np.ones((1, 5)),                                    # one task
    np.random.default_rng(0).normal(size=(6, 2)),       # more tasks than parameters
    np.array([[1.0, 2.0], [1.0, 2.0]]),                 # identical
    np.array([[1.0, 2.0], [-1.0, -2.0]]),               # opposite
    np.array([[1.0, 2.0], [3.0, 6.0]]),                 # colinear, different norms
    1e-30 * np.array([[1.0, 0.5], [-0.2, 1.0]]),        # tiny
    1e30 * np.array([[1.0, 0.5], [-0.2, 1.0]]),         # huge
], ids=["zero", "one_task", "t_gt_p", "identical", "opposite", "colinear", "tiny", "huge"])
def test_degenerate_input_is_finite(name, j):
    out = aggregate(name, j.astype(np.float32))
    assert np.all(np.isfinite(out)), out


@pytest.mark.parametrize("name", METHODS)
def test_zero_jacobian_gives_zero_update(name):
    np.testing.assert_array_equal(aggregate(name, np.zeros((3, 4), np.float32)), 0.0)


@pytest.mark.parametrize("name", METHODS)
def test_one_task_returns_its_gradient(name):
    g = np.array([[0.3, -1.2, 2.0]], np.float32)
    np.testing.assert_allclose(aggregate(name, g), g[0], rtol=1e-4)


@pytest.mark.parametrize("name", METHODS)
def test_bfloat16_matches_float32(name):
    j = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0], [0.5, -2.0, 1.0]], np.float32)
    m = METHODS[name]
    out16, _ = m.update(jnp.asarray(j, jnp.bfloat16), m.init(None))
    assert out16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out16, np.float32), aggregate(name, j), rtol=0.05, atol=0.05)


class TestVariants(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_matches_no_jit(self):
        j = {"w": jnp.asarray(np.random.default_rng(1).normal(size=(3, 4, 2)), jnp.float32),
             "b": jnp.asarray(np.random.default_rng(2).normal(size=(3, 2)), jnp.float32)}
        for name, m in METHODS.items():
            out, _ = self.variant(m.update)(j, m.init(None))
            ref, _ = JITTED[name](j, m.init(None))
            chex.assert_trees_all_close(out, ref, rtol=1e-5, atol=1e-6, custom_message=name)


@pytest.mark.parametrize("name", METHODS)
def test_pytree_input_equals_flat_input(name):
    rng = np.random.default_rng(3)
    tree = {"a": rng.normal(size=(3, 2, 2)).astype(np.float32), "b": rng.normal(size=(3, 5)).astype(np.float32)}
    flat = np.concatenate([tree["a"].reshape(3, -1), tree["b"]], axis=1)
    m = METHODS[name]
    out, _ = jax.jit(m.update)(tree, m.init(None))
    np.testing.assert_allclose(np.concatenate([np.ravel(out["a"]), out["b"]]), aggregate(name, flat),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_chains_with_adam_and_takes_losses(name):
    params = {"w": jnp.ones((3,)), "b": jnp.zeros(())}
    tx = optax.chain(METHODS[name], optax.adam(1e-2))
    state = tx.init(params)
    grads = {"w": jnp.asarray([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]), "b": jnp.asarray([1.0, -1.0])}

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grads, state, params, losses=jnp.asarray([0.5, 2.0]))
        return optax.apply_updates(params, updates), state

    new, state = step(params, state)
    new, state = step(new, state)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    assert not np.allclose(new["w"], params["w"])


@pytest.mark.parametrize("name", METHODS)
def test_state_works_in_scan(name):
    m = FACTORIES[name](num_tasks=2)
    j = jnp.asarray([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])

    def body(state, _):
        out, state = m.update(j, state)
        return state, out

    state, outs = jax.lax.scan(body, m.init(None), None, length=3)
    assert outs.shape == (3, 3)
    assert state.weights.shape == (2,)
    np.testing.assert_allclose(outs[-1], jaxmtl.combine(state.weights, j), rtol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_mismatched_task_axes_raise(name):
    m = METHODS[name]
    with pytest.raises(ValueError, match="disagree on the number of tasks"):
        m.update({"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}, m.init(None))


@pytest.mark.parametrize("name", METHODS)
def test_wrong_losses_length_raises(name):
    m = METHODS[name]
    with pytest.raises(ValueError, match=r"losses has shape \(3,\) but task_grads has 2 tasks"):
        m.update(jnp.ones((2, 3)), m.init(None), losses=jnp.ones((3,)))


@pytest.mark.parametrize("name", METHODS)
def test_params_shape_mismatch_raises(name):
    m = METHODS[name]
    with pytest.raises(ValueError, match=r"expected \(T, \*param.shape\) = \(2, 4\)"):
        m.update({"w": jnp.ones((2, 3))}, m.init(None), {"w": jnp.ones((4,))})


@pytest.mark.parametrize("name", FACTORIES)
def test_num_tasks_mismatch_raises(name):
    m = FACTORIES[name](num_tasks=3)
    with pytest.raises(ValueError, match="num_tasks=3"):
        m.update(jnp.ones((2, 3)), m.init(None))


def test_scalar_leaf_raises():
    with pytest.raises(ValueError, match="is a scalar"):
        jaxmtl.upgrad().update({"w": jnp.ones(())}, ())
