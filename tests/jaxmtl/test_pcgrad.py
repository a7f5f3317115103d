"""PCGrad: published output, hand-computed projections, PRNG handling."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl
from tests.conftest import REFERENCE_J


def pcgrad(j, **kw):
    m = jaxmtl.pcgrad(**kw)
    return np.asarray(m.update(jnp.asarray(j, jnp.float32), m.init(None))[0])


def test_reference_output():
    np.testing.assert_allclose(pcgrad(REFERENCE_J), [0.5848, 3.8012, 3.8012], atol=1e-4)


def test_mean_reduction_halves_two_tasks():
    np.testing.assert_allclose(pcgrad(REFERENCE_J, reduction="mean"), [0.2924, 1.9006, 1.9006], atol=1e-4)


def test_non_conflicting_gradients_are_summed():
    j = np.array([[1.0, 0.5], [0.2, 1.0], [0.3, 0.3]], np.float32)
    np.testing.assert_allclose(pcgrad(j), j.sum(0), rtol=1e-5)


def test_three_tasks_by_hand():
    g1, g2, g3 = np.array([1.0, 0.0]), np.array([-1.0, 1.0]), np.array([0.0, -1.0])
    j = np.stack([g1, g2, g3]).astype(np.float32)

    def project(g, order):
        g = g.copy()
        for h in order:
            if g @ h < 0:
                g = g - (g @ h) / (h @ h) * h
        return g

    # compute the permutations the implementation draws and replay them by hand
    m = jaxmtl.pcgrad(seed=7)
    state = m.init(None)
    out, _ = m.update(jnp.asarray(j), state)
    _, sub = jax.random.split(state.key)
    perms = [np.asarray(jax.random.permutation(k, 3)) for k in jax.random.split(sub, 3)]
    gs = [g1, g2, g3]
    expected = sum(project(gs[i], [gs[k] for k in perms[i] if k != i]) for i in range(3))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_key_advances_and_seed_reproduces():
    m = jaxmtl.pcgrad(seed=3)
    s0 = m.init(None)
    _, s1 = m.update(jnp.asarray(REFERENCE_J), s0)
    assert not np.array_equal(s0.key, s1.key)
    np.testing.assert_array_equal(jaxmtl.pcgrad(seed=3).init(None).key, s0.key)


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match="reduction"):
        jaxmtl.pcgrad(reduction="max")
