"""value_and_jacobian_by_heads: the shared-mode Jacobian, without the heads' T x T cost."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl

T, B, D, H, W = 4, 8, 6, 5, 64
SHARED = {"trunk": True, "heads": False}


def make_params(key=0):
    k = jax.random.split(jax.random.PRNGKey(key), 2 + 2 * T)
    return {"trunk": {"w": 0.4 * jax.random.normal(k[0], (D, H)), "b": 0.1 * jax.random.normal(k[1], (H,))},
            "heads": [{"w1": 0.4 * jax.random.normal(k[2 + 2 * t], (H, W)),
                       "w2": 0.4 * jax.random.normal(k[3 + 2 * t], (W,))} for t in range(T)]}


def encode(params, x, y):
    return jnp.tanh(x @ params["trunk"]["w"] + params["trunk"]["b"])


def head_loss(t, params, z, x, y):
    pred = jnp.tanh(z @ params["heads"][t]["w1"]) @ params["heads"][t]["w2"]
    err = pred - y[:, t]
    return jnp.mean(jnp.abs(err)) if t % 2 else jnp.mean(err ** 2)   # tasks with different losses


def loss_fn(params, x, y):
    z = encode(params, x, y)
    return jnp.stack([head_loss(t, params, z, x, y) for t in range(T)])


def batch(seed=1):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(k1, (B, D)), jax.random.normal(k2, (B, T))


@pytest.mark.parametrize("chunk_size", [None, 3, "auto"])
def test_matches_the_shared_mode_jacobian(chunk_size):
    params, (x, y) = make_params(), batch()
    want_losses, want = jaxmtl.value_and_jacobian(loss_fn, shared=SHARED, chunk_size=None)(params, x, y)
    fn = jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=T, shared=SHARED, chunk_size=chunk_size)
    for got_losses, got in (fn(params, x, y), jax.jit(fn)(params, x, y)):
        np.testing.assert_allclose(got_losses, want_losses, rtol=1e-6)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max()), got,
                     want)
    assert got["trunk"]["w"].shape == (T, D, H) and got["heads"][0]["w1"].shape == (H, W)


def test_costs_the_heads_once():
    # XLA's flop count of the compiled functions: the shared-mode Jacobian pushes every task's
    # cotangent back through all T heads; by heads, each head's backward pass runs once
    params, (x, y) = make_params(), batch()

    def flops(fn):
        return jax.jit(fn).lower(params, x, y).compile().cost_analysis()["flops"]

    full = flops(jaxmtl.value_and_jacobian(loss_fn, shared=SHARED, chunk_size=None))
    by_heads = flops(jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=T, shared=SHARED,
                                                        chunk_size=None))
    head_flops = 2 * B * H * W + 2 * B * W          # one head's forward matmuls
    assert full - by_heads > (T - 1) * T * head_flops, (full, by_heads)


def test_drives_a_method_through_partition():
    params, (x, y) = make_params(), batch()
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), SHARED), optax.sgd(0.1))
    fn = jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=T, shared=SHARED)

    @jax.jit
    def step(params, state):
        losses, grads = fn(params, x, y)
        updates, state = tx.update(grads, state, params, losses=losses)
        return optax.apply_updates(params, updates), state, losses

    state = tx.init(params)
    first = None
    for _ in range(20):
        params, state, losses = step(params, state)
        first = losses if first is None else first
    assert np.all(np.asarray(losses) < np.asarray(first))   # UPGrad decreases every task


def test_errors():
    with pytest.raises(ValueError, match="num_tasks"):
        jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=0, shared=SHARED)
    fn = jaxmtl.value_and_jacobian_by_heads(encode, lambda t, p, z, x, y: z.sum(axis=1), num_tasks=T,
                                            shared=SHARED)
    with pytest.raises(ValueError, match="scalar per task"):
        fn(make_params(), *batch())
    fn = jaxmtl.value_and_jacobian_by_heads(encode, head_loss, num_tasks=T, shared=SHARED, stacked_heads=True)
    with pytest.raises(ValueError, match="leading axis of 4 tasks"):
        fn(make_params(), *batch())


def test_stacked_heads_match_the_shared_mode_jacobian():
    params, (x, y) = make_params(), batch()
    stacked = dict(params, heads=jax.tree.map(lambda *h: jnp.stack(h), *params["heads"]))

    def one_head(t, p, z, x, y):   # traced t: the same loss for every task
        pred = jnp.tanh(z @ p["heads"]["w1"]) @ p["heads"]["w2"]
        return jnp.mean((pred - y[:, t]) ** 2)

    def losses(p, x, y):
        z = encode(p, x, y)
        pred = jnp.einsum("tbw,tw->tb", jnp.tanh(jnp.einsum("bh,thw->tbw", z, p["heads"]["w1"])), p["heads"]["w2"])
        return jnp.mean((pred - y.T) ** 2, axis=1)

    want_losses, want = jaxmtl.value_and_jacobian(losses, shared=SHARED)(stacked, x, y)
    fn = jaxmtl.value_and_jacobian_by_heads(encode, one_head, num_tasks=T, shared=SHARED, stacked_heads=True)
    got_losses, got = jax.jit(fn)(stacked, x, y)
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max()), got, want)
