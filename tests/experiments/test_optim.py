"""Optimisers as an axis, and Paper A's loss-scale (in)variance claims on its toy model."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from experiments.optimizers import make_optimizer
from jaxmtl.analysis import relative_difference
from jaxmtl.models import apply_toy, init_toy, shared_mask, task_of

SHARED = shared_mask
TASK_OF = task_of
EPS = 1e-15  # Adam's eps, negligible next to this toy's smallest gradients (~1e-9)
SCALES = jnp.asarray([10.0, 0.1])


def toy_params(seed=0):
    """Paper A's toy: scalar input, 2x20 LeakyReLU backbone, two 2-layer heads."""
    return init_toy(jax.random.PRNGKey(seed))


def toy_losses(params, x, scales):
    targets = jnp.asarray([1.0, 2.0])[:, None] * x[None]  # L1 to scaled copies of x
    return jnp.mean(jnp.abs(apply_toy(params, x) - targets), axis=1) * scales


def train(tx, steps=5, scales=jnp.ones(2), freeze_trunk=False, seed=0):
    params = toy_params(seed)
    state = tx.init(params)
    vj = jaxmtl.value_and_jacobian(toy_losses, shared=SHARED)
    xs = jax.random.normal(jax.random.PRNGKey(42), (steps, 16))

    @jax.jit
    def step(params, state, x):
        losses, grads = vj(params, x, scales)
        if freeze_trunk:
            grads = dict(grads, encoder=jax.tree.map(jnp.zeros_like, grads["encoder"]))
        upd, state = tx.update(grads, state, params, losses=losses)
        return optax.apply_updates(params, upd), state

    for x in xs:
        params, state = step(params, state, x)
    return params


def max_rel_diff(a, b, part=None):
    """Relative parameter difference over ``part``: "heads", "trunk" or everything."""
    select = {"heads": lambda p: jax.tree.map(lambda m: not m, SHARED(p)), "trunk": SHARED, None: None}[part]
    return float(relative_difference(a, b, select))


def opt(name, method=None, lr=1e-2):
    return make_optimizer(name, lr, method or jaxmtl.linear(num_tasks=2), num_tasks=2,
                                 shared=SHARED, task_of=TASK_OF, eps=EPS)


def test_adam_is_invariant_for_heads_only():
    # one step from the same parameters: head updates equal, shared updates differ
    a = train(opt("adam"), steps=1)
    b = train(opt("adam"), steps=1, scales=SCALES)
    assert max_rel_diff(a, b, "heads") < 1e-5
    assert max_rel_diff(a, b, "trunk") > 1e-3
    # frozen backbone: the whole head trajectory is invariant
    a = train(opt("adam"), steps=20, freeze_trunk=True)
    b = train(opt("adam"), steps=20, scales=SCALES, freeze_trunk=True)
    assert max_rel_diff(a, b, "heads") < 1e-5


def test_sgd_is_not_invariant_anywhere():
    a = train(opt("sgd_momentum", lr=1e-3), steps=1)
    b = train(opt("sgd_momentum", lr=1e-3), steps=1, scales=SCALES)
    assert max_rel_diff(a, b, "heads") > 1e-3
    assert max_rel_diff(a, b, "trunk") > 1e-3


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
        assert max_rel_diff(other, ew, "heads") < 1e-5
    # default betas: constant weights are a constant loss scaling (invariant), but weights that
    # change every step (UW-O) give a different head trajectory than EW
    ew_adam = train(opt("adam"), steps=5, freeze_trunk=True)
    fixed = train(opt("adam", jaxmtl.linear([3.0, 0.2])), steps=5, freeze_trunk=True)
    varying = train(opt("adam", jaxmtl.uw_optimal(num_tasks=2)), steps=5, freeze_trunk=True)
    assert max_rel_diff(fixed, ew_adam) < 1e-5
    assert max_rel_diff(varying, ew_adam) > 1e-3


def test_task_of_scales_heads_and_needs_recorded_weights():
    grads = {"trunk": jnp.asarray([[1.0, 0.0], [0.0, 1.0]]), "heads": [jnp.ones(2), jnp.ones(2)]}
    params = {"trunk": jnp.zeros(2), "heads": [jnp.zeros(2), jnp.zeros(2)]}
    owners = {"trunk": -1, "heads": [0, 1]}
    m = jaxmtl.partition(jaxmtl.linear([2.0, 0.5]), {"trunk": True, "heads": False}, task_of=owners)
    out, _ = m.update(grads, m.init(params), params)
    np.testing.assert_allclose(out["heads"][0], [2.0, 2.0])
    np.testing.assert_allclose(out["heads"][1], [0.5, 0.5])
    m = jaxmtl.partition(jaxmtl.upgrad(), {"trunk": True, "heads": False}, task_of=owners)
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
        make_optimizer("lion", 0.1, jaxmtl.linear(), num_tasks=2)


def test_mtl_io_variants_run_one_optimizer_per_task():
    g = {"w": jnp.asarray([[1.0, -2.0], [3.0, 1.0]])}
    params = {"w": jnp.zeros(2)}
    # signSGD per task: sign(g_0) + sign(g_1), not sign(g_0 + g_1)
    tx = make_optimizer("mtl_io_signsgd_momentum", 0.1, jaxmtl.linear(num_tasks=2), num_tasks=2)
    u, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(u["w"], [-0.2, 0.0])
    # SGD+momentum per task is linear: it equals EW with one SGD+momentum
    per, shared = (make_optimizer(n, 0.1, jaxmtl.linear(num_tasks=2), num_tasks=2)
                   for n in ("mtl_io_sgd_momentum", "sgd_momentum"))
    sp, ss = per.init(params), shared.init(params)
    for _ in range(3):
        up, sp = per.update(g, sp, params)
        us, ss = shared.update(g, ss, params)
    np.testing.assert_allclose(up["w"], us["w"], rtol=1e-6)


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "adatask", "mtl_io"])
def test_weight_decay(name):
    params = {"w": jnp.asarray([2.0, -4.0])}
    zero = {"w": jnp.zeros((2, 2))}
    tx = make_optimizer(name, 0.1, jaxmtl.linear(num_tasks=2), num_tasks=2, weight_decay=0.5)
    u, _ = tx.update(zero, tx.init(params), params)
    if name == "sgd_momentum":  # coupled: the step on g + wd * p
        np.testing.assert_allclose(u["w"], [-0.1, 0.2])
    elif name == "adam":  # coupled: Adam's first step normalises g + wd * p to its sign
        np.testing.assert_allclose(u["w"], [-0.1, 0.1], rtol=1e-5)
    else:  # decoupled: -lr * wd * p on top of the (zero) per-task step
        np.testing.assert_allclose(u["w"], [-0.1, 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer(name, 0.1, jaxmtl.linear(num_tasks=2), num_tasks=2, weight_decay=-1.0)
