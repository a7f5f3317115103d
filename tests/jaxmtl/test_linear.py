"""Fixed linear scalarisation."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import jaxmtl
from tests.conftest import REFERENCE_J


def run(m, j):
    return np.asarray(m.update(jnp.asarray(j), m.init(None))[0])


def test_sum_mean_and_fixed_weights():
    np.testing.assert_allclose(run(jaxmtl.linear(), REFERENCE_J), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(run(jaxmtl.linear(reduction="mean"), REFERENCE_J), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(run(jaxmtl.linear([0.25, 0.5]), REFERENCE_J), [2.0, 0.75, 0.75])


def test_records_weights():
    m = jaxmtl.linear([0.25, 0.5], reduction="mean")
    _, state = m.update(jnp.asarray(REFERENCE_J), m.init(None))
    np.testing.assert_allclose(state.weights, [0.125, 0.25])


def test_weights_length_must_match():
    m = jaxmtl.linear([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"weights has shape \(3,\) but there are 2 tasks"):
        m.update(jnp.asarray(REFERENCE_J), m.init(None))
    with pytest.raises(ValueError, match="3 weights given for num_tasks=2"):
        jaxmtl.linear([1.0, 2.0, 3.0], num_tasks=2)


@pytest.mark.parametrize("bad", [[], [[1.0]], [np.nan, 1.0]])
def test_bad_weights_raise(bad):
    with pytest.raises(ValueError):
        jaxmtl.linear(bad)


def test_bad_reduction_raises():
    with pytest.raises(ValueError, match="reduction"):
        jaxmtl.linear(reduction="median")
