"""The active-set QP solvers against brute-force enumeration of active sets."""
from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxmtl.solvers import nonneg_qp, power_root, simplex_qp

NNQP = jax.jit(nonneg_qp)
SIMPLEX = jax.jit(simplex_qp)
POWER_ROOT = jax.jit(power_root)


def brute_nonneg(q, b):
    """Exact minimiser of 1/2 x'Qx + b'x over x >= 0 by enumerating free sets (float64)."""
    t = len(b)
    best, best_val = None, np.inf
    for r in range(t + 1):
        for free in itertools.combinations(range(t), r):
            x = np.zeros(t)
            if free:
                idx = list(free)
                x[idx] = np.linalg.solve(q[np.ix_(idx, idx)], -b[idx])
            if np.all(x >= -1e-12):
                val = 0.5 * x @ q @ x + b @ x
                if val < best_val:
                    best, best_val = x, val
    return best


@st.composite
def spd(draw, max_t=6):
    t = draw(st.integers(1, max_t))
    rank = draw(st.integers(1, t))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.normal(size=(t, rank))
    q = a @ a.T
    q = q / np.trace(q) + 1e-3 * np.eye(t)
    return q, rng.normal(size=t)


@given(spd())
def test_nonneg_qp_matches_brute_force(problem):
    q, b = problem
    x = np.asarray(NNQP(q.astype(np.float32), b.astype(np.float32)), np.float64)
    ref = brute_nonneg(q, b)
    assert np.all(x >= 0)
    obj = lambda v: 0.5 * v @ q @ v + b @ v
    assert obj(x) <= obj(ref) + 1e-4 * (1 + abs(obj(ref)))
    np.testing.assert_allclose(x, ref, atol=2e-2 * (1 + np.abs(ref).max()))


@given(spd())
def test_simplex_qp_matches_brute_force(problem):
    q, _ = problem
    x = np.asarray(SIMPLEX(q.astype(np.float32)), np.float64)
    _, ref_val = brute_simplex_linear(q, np.zeros(len(q)))
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.sum(), 1.0, rtol=1e-5)
    assert 0.5 * x @ q @ x <= ref_val + 0.5e-5


def test_nonneg_qp_closed_form():
    # unconstrained minimiser -Q^{-1} b = (1, -1): the second coordinate is clipped and
    # the first re-solved with it fixed at 0: x = (-b0 / q00, 0).
    q = np.array([[2.0, 0.5], [0.5, 1.0]], np.float32)
    b = -(q @ np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(nonneg_qp(q, b), [-b[0] / q[0, 0], 0.0], rtol=1e-6)


def test_simplex_qp_two_points():
    # min-norm point between g1 = (-4, 1, 1) and g2 = (6, 1, 1): w = (0.6, 0.4)
    j = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(simplex_qp(j @ j.T), [0.6, 0.4], rtol=1e-5)


def test_nonneg_qp_warm_start_gives_same_answer():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    q = (a @ a.T + 0.1 * np.eye(5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    cold = nonneg_qp(q, b)
    np.testing.assert_allclose(nonneg_qp(q, b, x0=cold), cold, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nonneg_qp(q, b, x0=np.zeros(5)), cold, rtol=1e-4, atol=1e-5)


def brute_simplex_linear(q, b, a=None):
    """Exact minimiser of 1/2 x'Qx + b'x over {x >= 0, a'x = 1} by enumerating supports (float64)."""
    t = len(b)
    a = np.ones(t) if a is None else a
    best, best_val = None, np.inf
    for r in range(1, t + 1):
        for free in itertools.combinations(range(t), r):
            idx = list(free)
            m = np.block([[q[np.ix_(idx, idx)], a[idx][:, None]], [a[idx][None, :], np.zeros((1, 1))]])
            sol = np.linalg.lstsq(m, np.r_[-b[idx], 1.0], rcond=None)[0]
            x = np.zeros(t)
            x[idx] = sol[:r]
            if np.all(x >= -1e-12):
                val = 0.5 * x @ q @ x + b @ x
                if val < best_val:
                    best, best_val = x, val
    return best, best_val


@given(spd())
def test_simplex_qp_with_linear_term_matches_brute_force(problem):
    q, b = problem
    x = np.asarray(SIMPLEX(q.astype(np.float32), b.astype(np.float32)), np.float64)
    _, ref_val = brute_simplex_linear(q, b)
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.sum(), 1.0, rtol=1e-5)
    assert 0.5 * x @ q @ x + b @ x <= ref_val + 1e-5 * (1 + abs(ref_val))


@given(spd(), st.integers(0, 2**32 - 1))
def test_weighted_simplex_qp_matches_brute_force(problem, seed):
    q, b = problem
    a = 10.0 ** np.random.default_rng(seed).uniform(-3, 0, len(b))     # a'x = 1, graded weights
    x = np.asarray(SIMPLEX(q.astype(np.float32), b.astype(np.float32), a=a.astype(np.float32)), np.float64)
    _, ref_val = brute_simplex_linear(q, b, a)
    assert np.all(x >= 0)
    np.testing.assert_allclose(a @ x, 1.0, rtol=1e-5)
    assert 0.5 * x @ q @ x + b @ x <= ref_val + 1e-5 * (1 + abs(ref_val))


@given(spd(), st.sampled_from([0.25, 1.0, 3.0]))
def test_power_root_solves_its_equation(problem, p):
    q, _ = problem
    x = np.asarray(POWER_ROOT(q.astype(np.float32), p), np.float64)
    assert np.all(x > 0)
    np.testing.assert_allclose(q @ x, x ** (-p), rtol=2e-3, atol=1e-4)


@given(spd(), st.sampled_from([0.25, 1.0, 3.0]), st.integers(0, 2**32 - 1))
def test_power_root_scaled_form(problem, p, seed):
    # (C (e z))_t / e_t = z_t^-p for row scales e spanning two orders of magnitude (FairGrad with
    # alpha = 4 and norms over 1e3.3); near-singular C with p = 1/4 needs more than 40 iterations
    q, _ = problem
    q = q.astype(np.float32).astype(np.float64)
    e = 10.0 ** np.random.default_rng(seed).uniform(-1, 1, len(q))
    z = np.asarray(POWER_ROOT(q.astype(np.float32), p, e=e.astype(np.float32), num_iters=100), np.float64)
    assert np.all(z > 0)
    # backward-stable: the residual is small against the terms that cancel in float32
    terms = (np.abs(q) @ (e * z)) / e + z ** (-p)
    assert np.all(np.abs((q @ (e * z)) / e - z ** (-p)) <= 1e-4 * terms), (z, terms)


def test_power_root_diagonal_closed_form_and_warm_start():
    q = np.diag([4.0, 0.25]).astype(np.float32)
    np.testing.assert_allclose(power_root(q, 1.0), [0.5, 2.0], rtol=1e-5)
    np.testing.assert_allclose(power_root(q, 1.0, x0=np.array([0.5, 2.0]), num_iters=1), [0.5, 2.0], rtol=1e-5)
    np.testing.assert_allclose(power_root(q, 3.0), np.diag(q) ** (-1 / 4), rtol=1e-5)
    with pytest.raises(ValueError, match="p must be positive"):
        power_root(q, 0.0)


NNQP_STEPS = jax.jit(nonneg_qp, static_argnames="pdas_iter")
SIMPLEX_STEPS = jax.jit(simplex_qp, static_argnames="pdas_iter")


CYCLING = (np.array([[1.103, -1.302, -2.551], [-1.302, 3.485, 6.221], [-2.551, 6.221, 11.263]]),
           np.array([-1.051, 0.017, 1.077]))
"""A positive-definite QP on which primal-dual active-set steps cycle from x = 0's guess."""


def test_primal_dual_steps_cycle_here_but_the_answer_is_exact():
    from jaxmtl.solvers.active_set import _primal_dual
    q, b = CYCLING
    _, repeated = _primal_dual(q.astype(np.float32), b.astype(np.float32), None, b < 0, 30)
    assert not bool(repeated)                                    # the seed is a wrong guess here
    ref = brute_nonneg(q, b)
    for steps in (0, 1, 30):
        x = np.asarray(NNQP_STEPS(q.astype(np.float32), b.astype(np.float32), pdas_iter=steps), np.float64)
        np.testing.assert_allclose(x, ref, rtol=1e-4, atol=1e-5)


@settings(max_examples=30)
@given(spd(max_t=4), st.sampled_from([0, 1]))  # 10 (the default) is the other tests' case
def test_primal_dual_seed_does_not_change_the_answer(problem, steps):
    q, b = problem
    q32, b32 = q.astype(np.float32), b.astype(np.float32)
    x = np.asarray(NNQP_STEPS(q32, b32, pdas_iter=steps), np.float64)
    ref = brute_nonneg(q, b)
    np.testing.assert_allclose(x, ref, atol=2e-3 * (1 + np.abs(ref).max()))
    s = np.asarray(SIMPLEX_STEPS(q32, b32, pdas_iter=steps), np.float64)
    _, ref_val = brute_simplex_linear(q, b)
    assert np.all(s >= 0) and abs(s.sum() - 1.0) < 1e-5
    assert 0.5 * s @ q @ s + b @ s <= ref_val + 1e-5 * (1 + abs(ref_val))
