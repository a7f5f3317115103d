"""Optimisers as an axis, and Paper A's loss-scale (in)variance claims on its toy model."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl

SHARED = {"trunk": True, "heads": False}
TASK_OF = {"trunk": -1, "heads": [0, 1]}
EPS = 1e-15  # Adam's eps, negligible next to this toy's smallest gradients (~1e-9)
SCALES = jnp.asarray([10.0, 0.1])


def toy_params(seed=0):
    """Paper A's toy: scalar input, 2x20 LeakyReLU backbone, two 2-layer heads."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    dense = lambda key, i, o: {"w": jax.random.normal(key, (i, o)) / np.sqrt(i), "b": jnp.zeros(o)}
    return {"trunk": [dense(k[0], 1, 20), dense(k[1], 20, 20)],
            "heads": [[dense(k[2], 20, 20), dense(k[3], 20, 1)], [dense(k[4], 20, 20), dense(k[5], 20, 1)]]}


def toy_losses(params, x, scales):
    h = x[:, None]
    for layer in params["trunk"]:
        h = jax.nn.leaky_relu(h @ layer["w"] + layer["b"])
    out = []
    for t, head in enumerate(params["heads"]):
        z = jax.nn.leaky_relu(h @ head[0]["w"] + head[0]["b"]) @ head[1]["w"] + head[1]["b"]
        out.append(jnp.mean(jnp.abs(z[:, 0] - (t + 1.0) * x)))   # L1 to scaled copies of x
    return jnp.stack(out) * scales


def train(tx, steps=5, scales=jnp.ones(2), freeze_trunk=False, seed=0):
    params = toy_params(seed)
    state = tx.init(params)
    vj = jaxmtl.value_and_jacobian(toy_losses, shared=SHARED)
    xs = jax.random.normal(jax.random.PRNGKey(42), (steps, 16))

    @jax.jit
    def step(params, state, x):
        losses, grads = vj(params, x, scales)
        if freeze_trunk:
            grads = {"trunk": jax.tree.map(jnp.zeros_like, grads["trunk"]), "heads": grads["heads"]}
        upd, state = tx.update(grads, state, params, losses=losses)
        return optax.apply_updates(params, upd), state

    for x in xs:
        params, state = step(params, state, x)
    return params


def max_rel_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-12))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def opt(name, method=None, lr=1e-2):
    return jaxmtl.make_optimizer(name, lr, method or jaxmtl.linear(num_tasks=2), num_tasks=2,
                                 shared=SHARED, task_of=TASK_OF, eps=EPS)


def test_adam_is_invariant_for_heads_only():
    # one step from the same parameters: head updates equal, shared updates differ
    a = train(opt("adam"), steps=1)
    b = train(opt("adam"), steps=1, scales=SCALES)
    assert max_rel_diff(a["heads"], b["heads"]) < 1e-5
    assert max_rel_diff(a["trunk"], b["trunk"]) > 1e-3
    # frozen backbone: the whole head trajectory is invariant
    a = train(opt("adam"), steps=20, freeze_trunk=True)
    b = train(opt("adam"), steps=20, scales=SCALES, freeze_trunk=True)
    assert max_rel_diff(a["heads"], b["heads"]) < 1e-5


def test_sgd_is_not_invariant_anywhere():
    a = train(opt("sgd_momentum", lr=1e-3), steps=1)
    b = train(opt("sgd_momentum", lr=1e-3), steps=1, scales=SCALES)
    assert max_rel_diff(a["heads"], b["heads"]) > 1e-3
    assert max_rel_diff(a["trunk"], b["trunk"]) > 1e-3


@pytest.mark.parametrize("name", ["adatask", "mtl_io"])
def test_per_task_adam_is_invariant_everywhere(name):
    a = train(opt(name), steps=10)
    b = train(opt(name), steps=10, scales=SCALES)
    assert max_rel_diff(a, b) < 1e-4


def test_uw_optimal_is_invariant_everywhere_even_with_sgd():
    a = train(opt("sgd_momentum", jaxmtl.uw_optimal(num_tasks=2), lr=1e-3), steps=10)
    b = train(opt("sgd_momentum", jaxmtl.uw_optimal(num_tasks=2), lr=1e-3), steps=10, scales=SCALES)
    assert max_rel_diff(a, b) < 1e-4


def test_loss_weightings_reduce_to_ew_with_frozen_backbone_and_zero_betas():
    """Paper A: with beta1 = beta2 = 0 Adam is sign descent per coordinate, so with a frozen
    backbone any positive per-task weighting gives EW's head updates."""
    def zero_beta(method):
        return optax.chain(jaxmtl.partition(method, SHARED, task_of=TASK_OF),
                           optax.adam(1e-2, b1=0.0, b2=0.0, eps=EPS))

    ew = train(zero_beta(jaxmtl.linear(num_tasks=2)), steps=5, freeze_trunk=True)
    for method in (jaxmtl.uw_optimal(num_tasks=2), jaxmtl.linear([3.0, 0.2]), jaxmtl.geometric_mean(num_tasks=2)):
        other = train(zero_beta(method), steps=5, freeze_trunk=True)
        assert max_rel_diff(other["heads"], ew["heads"]) < 1e-5
    # default betas: constant weights are a constant loss scaling (invariant), but weights that
    # change every step (UW-O) give a different head trajectory than EW
    ew_adam = train(opt("adam"), steps=5, freeze_trunk=True)["heads"]
    fixed = train(opt("adam", jaxmtl.linear([3.0, 0.2])), steps=5, freeze_trunk=True)["heads"]
    varying = train(opt("adam", jaxmtl.uw_optimal(num_tasks=2)), steps=5, freeze_trunk=True)["heads"]
    assert max_rel_diff(fixed, ew_adam) < 1e-5
    assert max_rel_diff(varying, ew_adam) > 1e-3


def test_task_of_scales_heads_and_needs_recorded_weights():
    grads = {"trunk": jnp.asarray([[1.0, 0.0], [0.0, 1.0]]), "heads": [jnp.ones(2), jnp.ones(2)]}
    params = {"trunk": jnp.zeros(2), "heads": [jnp.zeros(2), jnp.zeros(2)]}
    m = jaxmtl.partition(jaxmtl.linear([2.0, 0.5]), {"trunk": True, "heads": False}, task_of=TASK_OF)
    out, _ = m.update(grads, m.init(params), params)
    np.testing.assert_allclose(out["heads"][0], [2.0, 2.0])
    np.testing.assert_allclose(out["heads"][1], [0.5, 0.5])
    m = jaxmtl.partition(jaxmtl.upgrad(), {"trunk": True, "heads": False}, task_of=TASK_OF)
    with pytest.raises(ValueError, match="build the method with num_tasks"):
        m.update(grads, m.init(params), params)


def test_per_task_equals_separate_optimizers():
    g = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]])}
    params = {"w": jnp.zeros(2)}
    pt = jaxmtl.per_task(optax.adam(0.1), 2)
    s = pt.init(params)
    for _ in range(3):
        out, s = pt.update(g, s, params)
    for t in range(2):
        single = optax.adam(0.1)
        ss = single.init(params)
        for _ in range(3):
            ref, ss = single.update({"w": g["w"][t]}, ss, params)
        np.testing.assert_allclose(out["w"][t], ref["w"], rtol=1e-6)
    with pytest.raises(ValueError, match="num_tasks=2"):
        pt.update({"w": jnp.ones((3, 2))}, s, params)


def test_signum_and_registry():
    tx = jaxmtl.signum(0.1, momentum=0.5)
    s = tx.init(jnp.zeros(2))
    u, s = tx.update(jnp.asarray([2.0, -0.01]), s)
    np.testing.assert_allclose(u, [-0.1, 0.1])
    u, s = tx.update(jnp.asarray([-3.0, 0.0]), s)       # momentum: 1 - 3 < 0, -0.005 < 0
    np.testing.assert_allclose(u, [0.1, 0.1])
    with pytest.raises(ValueError, match="unknown optimizer"):
        jaxmtl.make_optimizer("lion", 0.1, jaxmtl.linear(), num_tasks=2)
