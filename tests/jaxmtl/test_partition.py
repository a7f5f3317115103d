"""partition(): the method sees shared leaves only; heads get their plain gradient."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl

PARAMS = {"trunk": jnp.ones((3,)), "head": [jnp.ones((2,)), jnp.ones((2,))]}
SHARED = {"trunk": True, "head": False}


def test_unstacked_heads_pass_through():
    grads = {"trunk": jnp.asarray([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]),
             "head": [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])]}
    m = jaxmtl.partition(jaxmtl.upgrad(), SHARED)
    out, _ = jax.jit(m.update)(grads, m.init(PARAMS), PARAMS)
    np.testing.assert_allclose(out["trunk"], [0.2924, 1.9006, 1.9006], atol=2e-4)
    np.testing.assert_array_equal(out["head"][1], [3.0, 4.0])


def test_stacked_heads_are_summed():
    grads = {"trunk": jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
             "head": [jnp.asarray([[1.0, 2.0], [0.0, 0.0]]), jnp.asarray([[0.0, 0.0], [3.0, 4.0]])]}
    m = jaxmtl.partition(jaxmtl.mgda(), SHARED)
    out, _ = m.update(grads, m.init(PARAMS), PARAMS)
    np.testing.assert_allclose(out["trunk"], [0.5, 0.5, 0.0], atol=1e-5)
    np.testing.assert_array_equal(out["head"][0], [1.0, 2.0])
    np.testing.assert_array_equal(out["head"][1], [3.0, 4.0])


def test_end_to_end_with_value_and_jacobian_and_adam():
    def loss_fn(p, x):
        z = jnp.tanh(p["trunk"] * x)
        return jnp.stack([jnp.sum(z[:2] * h) ** 2 for h in p["head"]])

    tx = optax.chain(jaxmtl.partition(jaxmtl.pcgrad(), SHARED), optax.adam(1e-2))
    state = tx.init(PARAMS)
    vj = jaxmtl.value_and_jacobian(loss_fn, shared=SHARED)

    @jax.jit
    def step(p, s, x):
        losses, g = vj(p, x)
        u, s = tx.update(g, s, p, losses=losses)
        return optax.apply_updates(p, u), s, losses

    p, s = PARAMS, state
    first = None
    for _ in range(50):
        p, s, losses = step(p, s, jnp.asarray([1.0, 2.0, 3.0]))
        first = losses if first is None else first
    assert float(losses.sum()) < 0.5 * float(first.sum())


def test_empty_mask_raises():
    m = jaxmtl.partition(jaxmtl.upgrad(), {"trunk": False, "head": False})
    with pytest.raises(ValueError, match="selects no leaf"):
        m.update({"trunk": jnp.ones((2, 3)), "head": [jnp.ones(2), jnp.ones(2)]}, m.init(PARAMS), PARAMS)


def test_extra_task_grads_are_masked_too():
    grads = {"trunk": jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
             "head": [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])]}
    m = jaxmtl.partition(jaxmtl.modo(gamma=0.1, num_tasks=2), SHARED)
    out, state = jax.jit(m.update)(grads, m.init(PARAMS), PARAMS, extra_task_grads=(grads, grads))
    np.testing.assert_allclose(state.method.weights, [0.5, 0.5], atol=1e-6)  # symmetric problem
    np.testing.assert_allclose(out["trunk"], [0.5, 0.5, 0.0], atol=1e-6)
    np.testing.assert_array_equal(out["head"][1], [3.0, 4.0])


def test_state_is_typed_and_others_have_their_own():
    m = jaxmtl.partition(jaxmtl.upgrad(), SHARED, others=optax.scale_by_adam())
    state = m.init(PARAMS)
    assert isinstance(state, jaxmtl.PartitionState)
    assert isinstance(state.method, jaxmtl.WeightsState) and isinstance(state.others, optax.ScaleByAdamState)
    assert isinstance(jaxmtl.partition(jaxmtl.upgrad(), SHARED).init(PARAMS).others, optax.EmptyState)


@pytest.mark.parametrize("owner", [2, 5, -2])
def test_out_of_range_task_of_raises(owner):
    grads = {"trunk": jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
             "head": [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])]}
    m = jaxmtl.partition(jaxmtl.linear(num_tasks=2), SHARED, task_of={"trunk": -1, "head": [0, owner]})
    with pytest.raises(ValueError, match=rf"task_of gives task {owner} for leaf .*'head'.*1.*there are 2 tasks"):
        m.update(grads, m.init(PARAMS), PARAMS)


def test_integer_gradients_give_float_updates():
    grads = {"trunk": jnp.asarray([[1, 0, 0], [0, 1, 0]]), "head": [jnp.asarray([1, 2]), jnp.asarray([3, 4])]}
    m = jaxmtl.partition(jaxmtl.linear(reduction="mean"), SHARED)
    out, _ = m.update(grads, m.init(PARAMS), PARAMS)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(out))
    np.testing.assert_allclose(out["trunk"], [0.5, 0.5, 0.0])


def test_a_skipped_step_zeroes_the_heads_too():
    grads = {"trunk": jnp.asarray([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
             "head": [jnp.asarray([1.0, 2.0]), jnp.asarray([3.0, 4.0])]}
    m = jaxmtl.partition(jaxmtl.uncertainty(num_tasks=2), SHARED, task_of={"trunk": -1, "head": [0, 1]})
    state = m.init(PARAMS)
    out, new = jax.jit(m.update)(grads, state, PARAMS, losses=jnp.asarray([1.0, jnp.nan]))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out))
    assert int(new.method.skipped) == 1
    np.testing.assert_array_equal(new.method.log_var, state.method.log_var)
