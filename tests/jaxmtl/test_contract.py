"""The method contract, checked for every method of the registry.

Typed states with ``weights`` and ``skipped``; every numeric hyperparameter
traceable under ``optax.inject_hyperparams``; a non-finite step skipped without
touching the state; the update of a Gramian method equal to its public
weighting combined with the Jacobian; invariance to per-task loss scales for
the methods that claim it, from 1e-6 to 1e6 on gradients whose norms already
differ by 1e5.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxmtl
from jaxmtl.protocol import is_method_state
from tests.methods_registry import SPECS, aggregate, built, inputs

ALL = sorted(SPECS)
RNG = np.random.default_rng(42)
J3 = RNG.normal(size=(3, 5)).astype(np.float32)
LOSSES3 = np.array([1.0, 2.0, 0.5], np.float32)


def ill_scaled(norms=(6e3, 5e-2, 6.0), p=8, seed=0):
    """Full-rank gradients with the given norms (losses in different units)."""
    u = np.random.default_rng(seed).normal(size=(len(norms), p))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.asarray(norms)[:, None] * u


def steps(name, tx, js, losses, jit=True):
    """Runs ``tx`` over the Jacobians ``js`` (and ``losses``); returns updates and the last state."""
    update = jax.jit(tx.update) if jit else tx.update
    params = jnp.zeros(js[0].shape[1:], jnp.float32)
    state = tx.init(params)
    outs = []
    for j, l in zip(js, losses):
        _, kwargs = inputs(name, j, l)
        out, state = update(jnp.asarray(j), state, params, **kwargs)
        outs.append(np.asarray(out))
    return outs, state


@pytest.mark.parametrize("name", ALL)
def test_state_is_a_typed_method_state(name):
    m, _ = built(name, 3)
    state = m.init(jnp.zeros(5))
    assert is_method_state(state) and isinstance(state, tuple) and hasattr(state, "_fields")
    assert state.skipped.dtype == jnp.int32 and int(state.skipped) == 0
    if name != "graddrop":   # coordinate-wise: no task weights
        assert state.weights.shape == (3,)  # built with num_tasks: the weights are recorded


# an alternative value for every numeric hyperparameter of every factory
ALTERNATIVES = {
    "alpha": 2.0, "beta": 0.3, "beta_sigma": 0.3, "burn_in": 1, "c": 0.7, "gamma": 0.05,
    "gamma_sigma": 0.3, "init": -0.5, "lamda": 0.5, "leak": 0.3, "lr": 0.01, "max_norm": 0.5,
    "momentum": 0.3, "mu": 0.5, "num_iters": 7, "rcond": 1e-3, "reg": 1e-3, "rescale": 2, "rho": 0.2,
    "robust_step_size": 0.05, "steps_per_epoch": 2, "temperature": 0.5, "update_weights_every": 2,
}


@pytest.mark.parametrize("name", ALL)
def test_every_hyperparameter_is_traceable(name):
    info = SPECS[name]
    hps = info.hyperparameters
    assert set(hps) <= set(ALTERNATIVES), f"add an alternative for {set(hps) - set(ALTERNATIVES)}"
    kwargs = {**info.kwargs, **{k: ALTERNATIVES[k] for k in hps}}
    injected = optax.inject_hyperparams(info.factory)(**kwargs, num_tasks=3)
    js = [J3, 2.0 * J3[::-1], J3 + 1.0]
    losses = [LOSSES3, 0.5 * LOSSES3, LOSSES3[::-1]]
    got, state = steps(name, injected, js, losses)
    assert set(hps) <= set(state.hyperparams)
    want, _ = steps(name, info.factory(**kwargs, num_tasks=3), js, losses)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)


def test_a_schedule_of_cagrad_c():
    # c from 0 (the mean gradient) to 0.8 over the steps, traced inside one jitted update
    tx = optax.inject_hyperparams(jaxmtl.cagrad)(c=optax.linear_schedule(0.0, 0.8, 2))
    params = jnp.zeros(5)
    state = tx.init(params)
    update = jax.jit(tx.update)
    outs = []
    for _ in range(3):
        out, state = update(jnp.asarray(J3), state, params)
        outs.append(np.asarray(out))
    ref = jaxmtl.cagrad(c=0.8)
    np.testing.assert_allclose(outs[0], J3.mean(0), rtol=1e-5)
    np.testing.assert_allclose(outs[2], ref.update(jnp.asarray(J3), ref.init(params))[0], rtol=1e-4)


def _strip(state):
    return state._replace(skipped=0)


@pytest.mark.parametrize("bad", ["losses", "grads"])
@pytest.mark.parametrize("name", ALL)
def test_a_nonfinite_step_is_skipped_and_leaves_no_trace(name, bad):
    m, update = built(name, 3)
    params, _ = inputs(name, J3)
    state = m.init(params)
    for k in range(2):  # a state that has moved away from its initial value
        _, kwargs = inputs(name, J3 * (k + 1), LOSSES3 / (k + 1))
        _, state = update(jnp.asarray(J3 * (k + 1)), state, params, **kwargs)
    j, losses = J3.copy(), LOSSES3.copy()
    if bad == "losses":
        losses[1] = np.nan
    else:
        j[1, 2] = np.inf
    _, kwargs = inputs(name, j, losses)
    out, skipped = update(jnp.asarray(j), state, params, **kwargs)
    np.testing.assert_array_equal(out, 0.0)
    assert int(skipped.skipped) == int(state.skipped) + 1
    chex_equal = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                              _strip(skipped), _strip(state))
    assert all(jax.tree.leaves(chex_equal)), (name, chex_equal)
    # the next finite step is the one the state would have taken without the bad batch
    _, kwargs = inputs(name, J3, LOSSES3)
    after, _ = update(jnp.asarray(J3), skipped, params, **kwargs)
    clean, _ = update(jnp.asarray(J3), state, params, **kwargs)
    np.testing.assert_allclose(after, clean, rtol=1e-6)


def test_graddrop_keeps_nan_with_and_without_jit():
    j = jnp.asarray([[1.0, jnp.nan, 2.0], [1.0, 1.0, jnp.inf]])
    m = jaxmtl.graddrop()
    p = jnp.zeros(3)
    for update in (m.update, jax.jit(m.update)):
        out, state = update(j, m.init(p), p)
        np.testing.assert_array_equal(out, 0.0)       # skipped, not silently masked
        assert int(state.skipped) == 1


def _public_weights(name, gram, state, losses):
    info = SPECS[name]
    if name == "pcgrad":
        return info.weights(gram, jax.random.split(state.key)[1], **info.kwargs)
    if name == "gradvac":
        return info.weights(gram, state.targets, jax.random.split(state.key)[1])[0]
    if name == "imtl":
        return info.weights(gram, log_scale=state.log_scale, **info.kwargs)
    if info.needs_losses:
        return info.weights(gram, losses=losses, **info.kwargs)
    return info.weights(gram, **info.kwargs)


@pytest.mark.parametrize("name", sorted(n for n in ALL if SPECS[n].weights is not None))
def test_update_is_the_public_weighting(name):
    m, update = built(name, 3)
    for j in (J3, ill_scaled().astype(np.float32)):
        params, kwargs = inputs(name, j, LOSSES3)
        state = m.init(params)
        out, _ = update(jnp.asarray(j), state, params, **kwargs)
        gram = jaxmtl.scaled_gramian(jnp.asarray(j))
        w = jax.jit(lambda g, s, l: _public_weights(name, g, s, l))(gram, state, jnp.asarray(LOSSES3))
        expected = np.asarray(jaxmtl.combine(w, jnp.asarray(j)))
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
        # the weighting of a plain (T, T) array agrees with the scaled form
        plain = jax.jit(lambda g, s, l: _public_weights(name, g, s, l))(
            gram.gram * gram.scale**2, state, jnp.asarray(LOSSES3))
        np.testing.assert_allclose(plain, w, rtol=1e-4, atol=1e-7 * np.abs(w).max())


TASK_SCALED = sorted(n for n in ALL if SPECS[n].task_scale)


@pytest.mark.parametrize("name", TASK_SCALED)
@settings(max_examples=25)
@given(exponents=st.lists(st.integers(-6, 6), min_size=3, max_size=3))
def test_per_task_loss_scaling(name, exponents):
    # L_t, g_t -> a_t L_t, a_t g_t with a_t from 1e-6 to 1e6, on norms 6e3, 5e-2 and 6
    j = ill_scaled()
    a = 10.0 ** np.asarray(exponents, np.float64)
    losses = np.array([1.0, 2.0, 0.5])
    d0 = aggregate(name, j.astype(np.float32), losses=losses.astype(np.float32))
    d1 = aggregate(name, (a[:, None] * j).astype(np.float32), losses=(a * losses).astype(np.float32))
    if SPECS[name].task_scale == "invariant":
        np.testing.assert_allclose(d1, d0, rtol=1e-4, atol=1e-4 * np.abs(d0).max())
    else:
        cos = d0 @ d1 / (np.linalg.norm(d0) * np.linalg.norm(d1))
        assert cos > 1 - 1e-6, cos


@pytest.mark.parametrize("name", ["ew", "graddrop", "moco", "upgrad"])
def test_integer_gradients_give_the_float_answer(name):
    j = np.array([[1, -2, 3], [2, 1, 0], [0, 1, 1]])
    m, _ = built(name, 3)
    params, kwargs = inputs(name, jnp.asarray(j, jnp.float32), LOSSES3)
    out, _ = m.update(jnp.asarray(j), m.init(params), params, **kwargs)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, aggregate(name, j.astype(np.float32), losses=LOSSES3), rtol=1e-5)
