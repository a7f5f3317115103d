"""Loss weightings: hand-computed steps, closed-form optima, options and errors."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from tests.conftest import REFERENCE_J

J = jnp.asarray(REFERENCE_J)


def steps(m, losses_seq, j=J):
    state = m.init(None)
    outs = []
    for losses in losses_seq:
        out, state = jax.jit(m.update)(j, state, losses=jnp.asarray(losses, jnp.float32))
        outs.append(np.asarray(out))
    return outs, state


def test_dwa_per_step_ratios():
    seq = [[1.0, 2.0], [0.5, 2.0], [0.25, 1.0]]
    outs, state = steps(jaxmtl.dwa(temperature=2.0, num_tasks=2), seq + [[1.0, 1.0]])
    np.testing.assert_allclose(outs[0], REFERENCE_J.sum(0))      # w = 1 for the first two steps
    np.testing.assert_allclose(outs[1], REFERENCE_J.sum(0))
    r = np.array([0.5 / 1.0, 2.0 / 2.0])                          # step 3: L(2) / L(1)
    w = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
    np.testing.assert_allclose(outs[2], w @ REFERENCE_J, rtol=1e-5)
    r = np.array([0.25 / 0.5, 1.0 / 2.0])                         # step 4: L(3) / L(2)
    np.testing.assert_allclose(state.weights, 2 * np.exp(r / 2) / np.exp(r / 2).sum(), rtol=1e-5)


def test_dwa_per_epoch_averages():
    seq = [[1.0, 2.0], [3.0, 2.0], [1.0, 1.0], [1.0, 3.0], [5.0, 5.0]]
    _, state = steps(jaxmtl.dwa(temperature=1.0, steps_per_epoch=2, num_tasks=2), seq)
    r = np.array([1.0 / 2.0, 2.0 / 2.0])                          # epoch means (2, 2) then (1, 2)
    np.testing.assert_allclose(state.weights, 2 * np.exp(r) / np.exp(r).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        jaxmtl.dwa(steps_per_epoch=0, num_tasks=2)


def test_uncertainty_step_by_hand_and_optimum():
    m = jaxmtl.uncertainty(init=0.0, optimizer=optax.sgd(0.1), num_tasks=2)
    outs, state = steps(m, [[2.0, 0.5]])
    np.testing.assert_allclose(outs[0], 0.5 * REFERENCE_J.sum(0), rtol=1e-6)   # w = exp(0) / 2
    np.testing.assert_allclose(state.log_var, -0.1 * (0.5 - 0.5 * np.array([2.0, 0.5])), rtol=1e-6)
    # closed-form optimum: exp(s_t) = L_t, i.e. w_t = 1 / (2 L_t)
    _, state = steps(jaxmtl.uncertainty(optimizer=optax.sgd(0.5), num_tasks=2), [[2.0, 0.5]] * 300)
    np.testing.assert_allclose(np.exp(state.log_var), [2.0, 0.5], rtol=1e-3)
    np.testing.assert_allclose(state.weights, [0.25, 1.0], rtol=1e-3)


def test_imtl_l_balances_scaled_losses():
    _, state = steps(jaxmtl.imtl_l(optimizer=optax.sgd(0.2), num_tasks=2), [[4.0, 0.25]] * 400)
    np.testing.assert_allclose(state.weights * np.array([4.0, 0.25]), [1.0, 1.0], rtol=1e-3)


def test_famo_weight_update_by_hand():
    lr, gamma = 0.1, 0.0
    m = jaxmtl.famo(gamma=gamma, lr=lr, num_tasks=2)
    l1, l2 = np.array([2.0, 1.0]), np.array([1.0, 0.9])
    outs, state = steps(m, [l1, l2])
    w1 = (0.5 / l1) / (0.5 / l1).sum()
    np.testing.assert_allclose(outs[0], w1 @ REFERENCE_J, rtol=1e-5)
    delta = np.log(l1) - np.log(l2)
    z = np.array([0.5, 0.5])
    grad = z * (delta - z @ delta)            # (dz/dxi)^T delta, descended
    xi = -lr * np.sign(grad)  # first Adam step moves each coordinate by lr * sign(grad)
    assert xi[0] < 0 < xi[1]  # task 0's log loss fell faster: it loses weight
    np.testing.assert_allclose(state.logits, xi, rtol=1e-4)
    z = np.exp(xi) / np.exp(xi).sum()
    np.testing.assert_allclose(state.weights, (z / l2) / (z / l2).sum(), rtol=1e-4)


def test_famo_uses_prev_batch_losses_when_given():
    m = jaxmtl.famo(num_tasks=2)
    s = m.init(None)
    _, s = m.update(J, s, losses=jnp.asarray([2.0, 1.0]))
    _, a = m.update(J, s, losses=jnp.asarray([1.0, 1.0]), prev_batch_losses=jnp.asarray([1.0, 0.5]))
    _, b = m.update(J, s, losses=jnp.asarray([1.0, 1.0]))
    assert not np.allclose(a.logits, b.logits)
    with pytest.raises(ValueError, match="losses has shape"):
        m.update(J, s, losses=jnp.ones(2), prev_batch_losses=jnp.ones(3))


def test_gradnorm_step_by_hand():
    lr, alpha = 0.1, 1.5
    m = jaxmtl.gradnorm(alpha=alpha, optimizer=optax.sgd(lr), num_tasks=2)
    outs, state = steps(m, [[2.0, 1.0], [1.0, 0.9]])
    np.testing.assert_allclose(outs[0], REFERENCE_J.sum(0), rtol=1e-6)     # weights start at 1
    n = np.linalg.norm(REFERENCE_J, axis=1)
    # step 1: r = 1, target = mean(n); d/dxi sum |2 softmax(xi) n - c| at xi = 0
    c = np.mean(n)
    sign = np.sign(n - c)
    jac = 2 * (np.diag([0.5, 0.5]) - 0.25)                                   # d(2 softmax)/dxi at 0
    xi1 = -lr * (jac.T @ (sign * n))
    w1 = 2 * np.exp(xi1) / np.exp(xi1).sum()
    np.testing.assert_allclose(outs[1], w1 @ REFERENCE_J, rtol=1e-5)


def test_gradnorm_layer_mask():
    tree = {"last": J, "first": jnp.asarray([[100.0, 0.0], [0.0, 1.0]])}
    m = jaxmtl.gradnorm(layer={"last": True, "first": False}, optimizer=optax.sgd(0.1), num_tasks=2)
    m_all = jaxmtl.gradnorm(optimizer=optax.sgd(0.1), num_tasks=2)
    s, s_all = m.init(None), m_all.init(None)
    for _ in range(2):
        _, s = m.update(tree, s, losses=jnp.asarray([1.0, 1.0]))
        _, s_all = m_all.update(tree, s_all, losses=jnp.asarray([1.0, 1.0]))
    assert not np.allclose(s.weights, s_all.weights)
    bad = jaxmtl.gradnorm(layer={"last": False, "first": False}, num_tasks=2)
    with pytest.raises(ValueError, match="selects no leaf"):
        bad.update(tree, bad.init(None), losses=jnp.ones(2))


def test_closed_form_loss_functions():
    losses = np.array([2.0, 0.5])
    (out,), _ = steps(jaxmtl.geometric_mean(), [losses])
    gm = np.sqrt(losses.prod())
    np.testing.assert_allclose(out, (gm / (2 * losses)) @ REFERENCE_J, rtol=1e-5)
    (out,), _ = steps(jaxmtl.uw_so(temperature=0.5), [losses])
    w = np.exp(1 / losses / 0.5) / np.exp(1 / losses / 0.5).sum()
    np.testing.assert_allclose(out, w @ REFERENCE_J, rtol=1e-5)
    (out,), _ = steps(jaxmtl.stch(mu=0.5, pref=[1.0, 2.0]), [losses])
    p = np.array([1.0, 2.0])
    w = p * np.exp(p * losses / 0.5) / np.exp(p * losses / 0.5).sum()
    np.testing.assert_allclose(out, w @ REFERENCE_J, rtol=1e-5)
    (a,), _ = steps(jaxmtl.scale_invariant(), [losses])
    (b,), _ = steps(jaxmtl.uw_optimal(), [losses])
    np.testing.assert_allclose(a, (1 / losses) @ REFERENCE_J, rtol=1e-6)
    np.testing.assert_array_equal(a, b)


def test_rlw_distributions():
    for dist in ("normal", "dirichlet"):
        m = jaxmtl.rlw(dist, num_tasks=3)
        ws = []
        s = m.init(None)
        for _ in range(50):
            _, s = m.update(jnp.ones((3, 2)), s)
            ws.append(np.asarray(s.weights))
        ws = np.array(ws)
        np.testing.assert_allclose(ws.sum(1), 1.0, rtol=1e-5)
        assert np.all(ws >= 0) and ws.std(0).min() > 0.05     # random and varying
    with pytest.raises(ValueError, match="distribution"):
        jaxmtl.rlw("uniform")


@pytest.mark.parametrize("factory", [jaxmtl.uncertainty, jaxmtl.imtl_l, jaxmtl.dwa, jaxmtl.gradnorm,
                                     jaxmtl.famo])
def test_learned_weightings_need_num_tasks(factory):
    with pytest.raises(ValueError, match="needs num_tasks"):
        factory()


@pytest.mark.parametrize("kwargs, match", [({"temperature": 0.0}, "temperature")])
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxmtl.uw_so(**kwargs)
    with pytest.raises(ValueError, match="mu"):
        jaxmtl.stch(mu=0.0)
