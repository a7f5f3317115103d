"""Edge cases over every registry method: zero Jacobians, extreme gradient scales,
differentiation through an update, and a wrong method state passed to ``update``."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmtl import registry
from tests.methods_registry import SPECS, inputs

ALL = sorted(SPECS)
T, P = 3, 6
J = np.random.default_rng(0).normal(size=(T, P)).astype(np.float32)


def _kwargs(name, j):
    """``(params, kwargs)`` of one update of ``name`` on ``j``; Auto-Lambda also gets a
    ``val_grad`` (its meta-gradient is what the look-ahead does)."""
    params, kwargs = inputs(name, j)
    if "val_grad" in SPECS[name].extra_args:
        kwargs["val_grad"] = jnp.asarray(j)[0] - jnp.asarray(j)[1]
    return params, kwargs


# --- 4. a state of another method, or None -------------------------------------------------

def _other_state(name):
    """The state of some other registry method whose state type differs from ``name``'s."""
    own = type(SPECS[name].build(T).init(jnp.zeros((P,))))
    for other in ALL:
        m = SPECS[other].build(T)
        state = m.init(jnp.zeros((P,)))
        if type(state) is not own:
            return state
    raise AssertionError("every method has the same state type")


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("wrong", ["none", "other"])
def test_wrong_state_is_a_clear_error(name, wrong):
    m = SPECS[name].build(T)
    params, kwargs = _kwargs(name, jnp.asarray(J))
    expected = type(m.init(params)).__name__
    state = None if wrong == "none" else _other_state(name)
    with pytest.raises((TypeError, ValueError)) as err:
        m.update(jnp.asarray(J), state, params, **kwargs)
    msg = str(err.value)
    assert expected in msg, msg
    assert ("None" if state is None else type(state).__name__) in msg, msg


def test_wrong_state_is_refused_without_params():
    m = registry.build("upgrad", T)
    with pytest.raises(TypeError, match="WeightsState.*None|None.*WeightsState"):
        m.update(jnp.asarray(J), None)
