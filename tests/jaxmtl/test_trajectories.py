"""Whole trajectories of the stateful methods against independent NumPy references.

Each method runs 40 steps on a fixed sequence (two tasks whose losses fall at
different rates, conflicting gradients); its weights and updates must follow
``tests/references.py`` (float64 re-derivations of the papers' and official
code's rules) at every step, not only the first.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl
from tests import references as ref

K, T, P = 40, 2, 6
RNG = np.random.default_rng(7)
STEPS = np.arange(K)
# task 0's log loss falls faster than task 1's, with 2% noise
LOSSES = np.stack([np.exp(-0.05 * STEPS), 2.0 * np.exp(-0.02 * STEPS)], 1) * (1 + 0.02 * RNG.normal(size=(K, T)))
BASE = np.array([[1.0, 0.5, -0.3, 0.2, 0.0, 1.0], [-0.8, 1.0, 0.4, 0.0, 0.6, -0.5]])
JACOBIANS = BASE[None] * (1.0 + 0.3 * RNG.normal(size=(K, T, P)))
EXTRA_B = BASE[None] * (1.0 + 0.3 * RNG.normal(size=(K, T, P)))
EXTRA_C = BASE[None] * (1.0 + 0.3 * RNG.normal(size=(K, T, P)))


def run(tx, *, losses=LOSSES, jacobians=JACOBIANS, extra=None):
    """``(updates (K, P), weights (K, T), last state)`` of ``tx`` over the sequence."""
    update = jax.jit(tx.update)
    params = jnp.zeros(P)
    state = tx.init(params)
    outs, weights = [], []
    for k in range(K):
        kwargs = {"losses": jnp.asarray(losses[k], jnp.float32)}
        if extra is not None:
            kwargs.update(extra(k))
        out, state = update(jnp.asarray(jacobians[k], jnp.float32), state, params, **kwargs)
        outs.append(np.asarray(out, np.float64))
        weights.append(np.asarray(state.weights, np.float64))
    return np.array(outs), np.array(weights), state


def close(actual, expected, rtol):
    """Every step within ``rtol`` of that step's largest entry."""
    err = np.abs(actual - expected) / (np.abs(expected).max(axis=-1, keepdims=True) + 1e-12)
    assert err.max() <= rtol, f"step {np.argmax(err.max(axis=-1))}: relative error {err.max():.2e}"


def applied(weights_seq, jacobians=JACOBIANS):
    return np.einsum("kt,ktp->kp", weights_seq, jacobians)


@pytest.mark.parametrize("make, reference, rtol", [
    (lambda: jaxmtl.uncertainty(num_tasks=T), ref.uncertainty, 1e-5),
    (lambda: jaxmtl.uncertainty(0.05, init=-0.5, num_tasks=T), functools.partial(ref.uncertainty, init=-0.5, lr=0.05), 1e-5),
    (lambda: jaxmtl.imtl_l(0.05, num_tasks=T), functools.partial(ref.imtl_l, lr=0.05), 1e-5),
    (lambda: jaxmtl.dwa(num_tasks=T), ref.dwa, 1e-5),
    (lambda: jaxmtl.dwa(1.0, steps_per_epoch=5, num_tasks=T),
     functools.partial(ref.dwa, temperature=1.0, steps_per_epoch=5), 1e-5),
    (lambda: jaxmtl.famo(num_tasks=T), ref.famo, 1e-4),
    (lambda: jaxmtl.famo(1e-2, lr=0.1, num_tasks=T), functools.partial(ref.famo, gamma=1e-2, lr=0.1), 1e-4),
    (lambda: jaxmtl.geometric_mean(num_tasks=T), ref.geometric_mean, 1e-5),
    (lambda: jaxmtl.stch(0.5, num_tasks=T), functools.partial(ref.stch, mu=0.5), 1e-5),
    (lambda: jaxmtl.uw_so(0.5, num_tasks=T), functools.partial(ref.uw_so, temperature=0.5), 1e-5),
], ids=["uw", "uw_libmtl_start", "imtl_l", "dwa", "dwa_epochs", "famo", "famo_grid", "gls", "stch", "uw_so"])
def test_loss_weighting_trajectory(make, reference, rtol):
    # the weights applied at step k are those the reference gives for step k
    outs, _, _ = run(make())
    close(outs, applied(reference(LOSSES)), rtol)


def test_famo_lowers_the_weight_of_the_faster_task():
    # Liu et al. (2023): the task whose log loss falls faster loses weight (the logits descend)
    _, _, state = run(jaxmtl.famo(num_tasks=T))
    z = np.asarray(jax.nn.softmax(state.logits))
    assert z[0] < 0.45 < 0.55 < z[1], z


def test_famo_with_the_previous_batch_losses():
    after = LOSSES * (1 - 0.01 * np.arange(1, 3))     # the previous batch's losses after the step
    outs, _, _ = run(jaxmtl.famo(num_tasks=T), extra=lambda k: {"prev_batch_losses": jnp.asarray(after[k])})
    close(outs, applied(ref.famo(LOSSES, prev_batch_losses_seq=after)), 1e-4)


def test_gradnorm_trajectory():
    norms = np.linalg.norm(JACOBIANS, axis=2)
    outs, _, _ = run(jaxmtl.gradnorm(lr=0.05, num_tasks=T))
    close(outs, applied(ref.gradnorm(LOSSES, norms, lr=0.05)), 1e-4)


@pytest.mark.parametrize("make, reference, rtol", [
    (lambda: jaxmtl.moco(num_tasks=T), lambda: ref.moco(JACOBIANS, LOSSES), 1e-4),
    (lambda: jaxmtl.db_mtl(num_tasks=T), lambda: ref.db_mtl(JACOBIANS, LOSSES), 1e-4),
    (lambda: jaxmtl.excess_mtl(0.5, num_tasks=T), lambda: ref.excess_mtl(JACOBIANS, robust_step_size=0.5), 1e-5),
    (lambda: jaxmtl.gradvac(0.3, num_tasks=T), lambda: ref.gradvac(JACOBIANS, beta=0.3), 1e-4),
], ids=["moco", "db_mtl", "excess_mtl", "gradvac"])
def test_stateful_aggregator_trajectory(make, reference, rtol):
    outs, weights, _ = run(make())
    ref_outs, ref_weights = reference()
    close(outs, ref_outs, rtol)
    close(weights, ref_weights, rtol)


def _extra(k):
    return {"extra_task_grads": (jnp.asarray(EXTRA_B[k], jnp.float32), jnp.asarray(EXTRA_C[k], jnp.float32))}


def test_modo_trajectory():
    outs, weights, _ = run(jaxmtl.modo(0.05, num_tasks=T), extra=_extra)
    ref_outs, ref_weights = ref.modo(JACOBIANS, EXTRA_B, EXTRA_C, gamma=0.05)
    close(outs, ref_outs, 1e-5)
    close(weights, ref_weights, 1e-5)


def test_sdmgrad_trajectory():
    # with the default lr = 5 the 20 heavy-ball steps amplify float32 round-off to ~3e-4;
    # at lr = 0.5 both follow the same trajectory to round-off
    outs, weights, _ = run(jaxmtl.sdmgrad(num_iters=50, lr=0.5, num_tasks=T), extra=_extra)
    ref_outs, ref_weights = ref.sdmgrad(JACOBIANS, EXTRA_B, EXTRA_C, num_iters=50, lr=0.5)
    close(outs, ref_outs, 1e-5)
    close(weights, ref_weights, 1e-5)
