"""Whole-chain wrappers that keep the task axis, and the optax wrappers that cannot."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl

PARAMS = {"trunk": jnp.ones((3,)), "head": [jnp.ones((2,)), jnp.ones((2,))]}
SHARED = {"trunk": True, "head": False}


def loss_fn(p, x):
    z = jnp.tanh(p["trunk"] * x)
    return jnp.stack([jnp.sum(z[:2] * h) ** 2 for h in p["head"]])


GRADS = jax.jit(jaxmtl.value_and_jacobian(loss_fn, shared=SHARED))


def chain(method=None):
    return optax.chain(jaxmtl.partition(method or jaxmtl.uncertainty(num_tasks=2), SHARED,
                                        task_of={"trunk": -1, "head": [0, 1]}), optax.adam(0.1))


def test_skip_nonfinite_keeps_every_state_of_the_chain():
    tx = jaxmtl.skip_nonfinite(chain())
    update = jax.jit(tx.update)
    state = tx.init(PARAMS)
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    _, state = update(g, state, PARAMS, losses=losses)
    bad = jax.tree.map(lambda x: x.at[0].set(jnp.nan), g)
    out, new = update(bad, state, PARAMS, losses=losses)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out))
    assert (int(new.skipped), int(new.consecutive)) == (1, 1)
    same = jax.tree.map(lambda a, b: np.array_equal(a, b), new.inner, state.inner)
    assert all(jax.tree.leaves(same))                       # Adam's moments and UW's log-variances
    _, again = update(g, new, PARAMS, losses=jnp.asarray([jnp.inf, 1.0]))
    assert (int(again.skipped), int(again.consecutive)) == (2, 2)
    _, fine = update(g, again, PARAMS, losses=losses)
    assert (int(fine.skipped), int(fine.consecutive)) == (2, 0)


def test_multi_steps_equals_the_chain_on_the_mean_jacobian():
    k = 3
    xs = [jnp.asarray([1.0, 2.0, 3.0]) * (i + 1) for i in range(k)]
    acc = jaxmtl.multi_steps(chain(jaxmtl.upgrad(num_tasks=2)), k, num_tasks=2, shared=SHARED)
    state = acc.init(PARAMS)
    update = jax.jit(acc.update)
    outs = []
    for x in xs:
        losses, g = GRADS(PARAMS, x)
        out, state = update(g, state, PARAMS, losses=losses)
        outs.append(out)
    for out in outs[:-1]:
        assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out))
    pairs = [GRADS(PARAMS, x) for x in xs]
    mean_g = jax.tree.map(lambda *gs: sum(gs) / k, *[g for _, g in pairs])
    mean_l = sum(l for l, _ in pairs) / k
    ref = chain(jaxmtl.upgrad(num_tasks=2))
    expected, ref_state = ref.update(mean_g, ref.init(PARAMS), PARAMS, losses=mean_l)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), outs[-1], expected)
    assert int(state.mini_step) == 0
    np.testing.assert_array_equal(jax.tree.leaves(state.grads)[0], 0.0)


def test_multi_steps_checks_the_accumulator_shapes():
    acc = jaxmtl.multi_steps(chain(), 2, num_tasks=3, shared=SHARED)
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="multi_steps: task_grads do not have the accumulator's shapes"):
        acc.update(g, acc.init(PARAMS), PARAMS, losses=losses)
    with pytest.raises(ValueError, match="every_k must be a positive integer"):
        jaxmtl.multi_steps(chain(), 0, num_tasks=2)


def test_optax_multisteps_names_the_route():
    tx = optax.MultiSteps(optax.chain(jaxmtl.partition(jaxmtl.upgrad(), SHARED), optax.adam(1e-3)), 4)
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"optax.MultiSteps .* Use jaxmtl.multi_steps"):
        tx.update(g, tx.init(PARAMS), PARAMS, losses=losses)


def test_optax_apply_if_finite_names_the_route():
    tx = optax.apply_if_finite(optax.chain(jaxmtl.partition(jaxmtl.upgrad(), SHARED), optax.adam(1e-3)), 3)
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"optax.apply_if_finite .* Use jaxmtl.skip_nonfinite"):
        jax.jit(tx.update)(g, tx.init(PARAMS), PARAMS, losses=losses)


def test_an_accumulator_of_plain_gradients_is_refused_by_what_it_passes():
    # what optax.MultiSteps does when it traces its skip branch, written outside optax: the
    # refusal comes from the missing task axis, not from recognising the wrapper
    inner = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), SHARED), optax.adam(1e-3))

    def update(task_grads, state, params=None, **extra):
        return inner.update(jax.tree.map(lambda g: g.mean(0), task_grads), state, params, **extra)

    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"no task axis.*optax.MultiSteps .* Use jaxmtl.multi_steps"):
        jax.jit(update)(g, inner.init(PARAMS), PARAMS, losses=losses)


def test_optax_wrappers_are_recognised_by_their_public_state_types():
    # a future optax with other private function names: any function of an optax module
    # that holds the wrapper's public state while it calls the chain
    namespace = {"__name__": "optax._renamed_in_a_later_release"}
    exec("def anything(inner, wrapper_state, *args, **kwargs):\n"
         "    return inner.update(*args, **kwargs)\n", namespace)
    tx = optax.chain(jaxmtl.partition(jaxmtl.upgrad(), SHARED), optax.adam(1e-3))
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    wrapper_state = optax.ApplyIfFiniteState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                                             jnp.zeros((), jnp.int32), tx.init(PARAMS))
    with pytest.raises(ValueError, match=r"optax.apply_if_finite .* Use jaxmtl.skip_nonfinite"):
        namespace["anything"](tx, wrapper_state, g, tx.init(PARAMS), PARAMS, losses=losses)
    # the same call from outside optax is an ordinary update
    updates, _ = tx.update(g, tx.init(PARAMS), PARAMS, losses=losses)
    assert jax.tree.structure(updates) == jax.tree.structure(PARAMS)


def test_plain_gradients_name_the_missing_task_axis():
    m = jaxmtl.upgrad()
    plain = jax.grad(lambda p: loss_fn(p, jnp.ones(3)).sum())(PARAMS)
    with pytest.raises(ValueError, match=r"no task axis: leaf \['head'\]\[0\] has shape \(2,\), the shape of its parameter"):
        m.update(plain, m.init(PARAMS), PARAMS)


def test_inject_hyperparams_around_a_partitioned_chain():
    tx = optax.chain(jaxmtl.partition(optax.inject_hyperparams(jaxmtl.nash_mtl)(max_norm=0.5, num_tasks=2),
                                      SHARED), optax.sgd(0.1))
    state = tx.init(PARAMS)
    losses, g = GRADS(PARAMS, jnp.asarray([1.0, 2.0, 3.0]))
    out, state = jax.jit(tx.update)(g, state, PARAMS, losses=losses)
    assert np.linalg.norm(out["trunk"]) <= 0.1 * 0.5 * (1 + 1e-5)
    np.testing.assert_allclose(jaxmtl.recorded_weights(state), jaxmtl.find_method_state(state).weights)
