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


# --- 1. a zero Jacobian --------------------------------------------------------------------

def _weights_args(m, gram):
    """Positional and keyword arguments of ``m.weights`` on ``gram`` (from its signature)."""
    import inspect
    sig = inspect.signature(m.weights).parameters
    args = []
    for p in list(sig.values())[1:]:
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty:
            args.append({"key": jax.random.PRNGKey(0), "targets": jnp.zeros((T, T))}[p.name])
    kwargs = {k: v for k, v in m.kwargs.items() if k in sig}
    if "losses" in sig:
        kwargs["losses"] = jnp.linspace(1.0, 2.0, T)
    return args, kwargs


@pytest.mark.parametrize("name", [m.name for m in registry.entries(kind="gramian")])
def test_gramian_weighting_of_a_zero_jacobian_is_finite(name):
    m = SPECS[name]
    args, kwargs = _weights_args(m, None)
    w = m.weights(jnp.zeros((T, T)), *args, **kwargs)
    w = w[0] if isinstance(w, tuple) else w
    assert np.all(np.isfinite(np.asarray(w))), w
    tx = m.build(T)
    params, kw = _kwargs(name, jnp.zeros((T, P)))
    update, state = jax.jit(tx.update)(jnp.zeros((T, P)), tx.init(params), params, **kw)
    assert int(state.skipped) == 0
    np.testing.assert_array_equal(update, 0.0)
    np.testing.assert_array_equal(np.isfinite(np.asarray(state.weights)), True)


def test_cagrad_at_a_zero_jacobian_is_its_rescaled_mean():
    # g0 = 0 so kappa = 0: d = g0 / (1 + c^2), the uniform weights divided by 1 + c^2
    w = jax.jit(lambda g: registry.get("cagrad").weights(g, c=0.4))(jnp.zeros((T, T)))
    np.testing.assert_allclose(w, np.full(T, 1.0 / T / (1.0 + 0.4**2)), rtol=1e-6)


# --- 2. gradient scales over float32's range ------------------------------------------------

SCALES = (1e-30, 1e-20, 1e-10, 1.0, 1e10, 1e20, 1e30)
STEPS = 3
# relative tolerance of d(cJ) = c d(J) (or d(J), 'invariant') per method; the default
# covers float32 round-off through a solver. Methods that learn their weights with an
# inner Adam are equivariant up to Adam's eps (1e-8 against meta-gradients of the scale
# of c or c^2): their weights move by lr per step at c = 1 and not at c = 1e-10, a
# relative change of lr / weight = 1e-4 / 0.1 (Auto-Lambda) and 1e-3 (GradNorm) per step.
SCALE_RTOL = {"auto_lambda": 1e-2, "gradnorm": 1e-2}


def _run(name, j):
    m = SPECS[name].build(T)
    params, kwargs = _kwargs(name, jnp.asarray(j))
    update = jax.jit(m.update)
    state = m.init(params)
    for _ in range(STEPS):
        out, state = update(jnp.asarray(j), state, params, **kwargs)
    return np.asarray(out, np.float64), int(state.skipped)


@pytest.mark.parametrize("name", ALL)
def test_update_over_float32_range_of_scales(name):
    claim = SPECS[name].scale
    base, skipped = _run(name, J)
    assert skipped == 0 and np.all(np.isfinite(base))
    for c in SCALES:
        out, skipped = _run(name, J * np.float32(c))
        assert skipped == 0, (c, skipped)
        assert np.all(np.isfinite(out)), (c, out)
        if claim is None:
            continue
        scaled = out / (c if claim == "linear" else 1.0)
        np.testing.assert_allclose(scaled, base, rtol=SCALE_RTOL.get(name, 2e-4),
                                   atol=SCALE_RTOL.get(name, 2e-4) * np.abs(base).max(),
                                   err_msg=f"scale {c}")


# --- 3. differentiating through an update ---------------------------------------------------

@pytest.fixture
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


FD_STEP = 1e-3
FD_DIRECTIONS = 3
# The methods compute in float32 (Gramians, solvers) whatever the input dtype, so a
# central difference of step 1e-3 resolves a directional derivative to ~1e-4 of the
# gradient's norm; a wrong derivative (an active set's, a solver's) is off by O(1).
FD_RTOL = 2e-3
# SDMGrad's update is 20 heavy-ball projected steps at lr = 5: piecewise smooth with pieces
# ~1e-3 wide at this point (the supports of its projections change), so a smaller step
FD_STEPS = {"sdmgrad": 1e-4}


def _scalar_of_update(name, v):
    m = SPECS[name].build(T)

    def f(j):
        params, kwargs = _kwargs(name, j)
        out, _ = m.update(j, m.init(params), params, **kwargs)
        return jnp.sum(out.astype(jnp.float64) * v)

    return jax.jit(f)


@pytest.mark.parametrize("name", ALL)
def test_gradient_through_the_update_matches_finite_differences(name, x64):
    rng = np.random.default_rng(1)
    j0 = jnp.asarray(rng.normal(size=(T, P)), jnp.float64)
    v = jnp.asarray(rng.normal(size=(P,)), jnp.float64)
    f = _scalar_of_update(name, v)
    grad = np.asarray(jax.jit(jax.grad(f))(j0))
    assert np.all(np.isfinite(grad)), grad
    for _ in range(FD_DIRECTIONS):
        r = jnp.asarray(rng.normal(size=(T, P)), jnp.float64)
        h = FD_STEPS.get(name, FD_STEP)
        fd = (float(f(j0 + h * r)) - float(f(j0 - h * r))) / (2 * h)
        exact = float(np.sum(grad * np.asarray(r)))
        assert abs(fd - exact) <= FD_RTOL * np.linalg.norm(grad) * np.linalg.norm(r) + 1e-6, (fd, exact)


def _fd_check(fun, args, rng, h=1e-3, rtol=2e-3, directions=3):
    """Reverse- and forward-mode derivatives of ``fun(*args)`` (an array) against central
    differences along random directions, all in float64 at the outer level (jitted: run eagerly,
    the solvers' loops dispatch op by op)."""
    fun = jax.jit(fun)
    out = fun(*args)
    cot = jnp.asarray(rng.normal(size=out.shape), out.dtype)
    vjp = jax.vjp(fun, *args)[1](cot)
    for _ in range(directions):
        d = [jnp.asarray(rng.normal(size=np.shape(a))) for a in args]
        plus = fun(*[a + h * x for a, x in zip(args, d)])
        minus = fun(*[a - h * x for a, x in zip(args, d)])
        fd = np.asarray((plus - minus) / (2 * h))
        _, jvp = jax.jvp(fun, tuple(args), tuple(d))
        scale = np.linalg.norm(fd) + 1e-3
        assert np.linalg.norm(np.asarray(jvp) - fd) <= rtol * 10 * scale, (jvp, fd)
        by_vjp = sum(float(np.sum(np.asarray(g) * np.asarray(x))) for g, x in zip(vjp, d))
        assert abs(by_vjp - float(np.sum(np.asarray(cot) * fd))) <= rtol * 10 * scale * np.linalg.norm(cot)


@pytest.mark.parametrize("seed", range(4))
def test_qp_solvers_derivatives_on_a_mixed_active_set(seed, x64):
    from jaxmtl.solvers import nonneg_qp, simplex_qp
    rng = np.random.default_rng(seed)
    t = 5
    a_ = rng.normal(size=(t, t))
    q = jnp.asarray(a_ @ a_.T / t + 0.5 * np.eye(t))
    b = jnp.asarray(rng.normal(size=t))
    weights = jnp.asarray(rng.uniform(0.5, 2.0, size=t))
    x = np.asarray(nonneg_qp(q, b))
    assert 0 < np.sum(x > 0) < t, x                 # free and fixed coordinates both
    _fd_check(lambda q, b: nonneg_qp(0.5 * (q + q.T), b), (q, b), rng)
    # the simplex, with a linear term that keeps several coordinates free
    y = np.asarray(simplex_qp(q, 0.3 * b, a=weights))
    assert np.sum(y > 0) >= 2, y
    _fd_check(lambda q, b, a: simplex_qp(0.5 * (q + q.T), b, a=a), (q, 0.3 * b, weights), rng)


@pytest.mark.parametrize("name", ["cagrad", "mgda", "upgrad", "dualproj", "edm"])
def test_weightings_derivatives_at_an_interior_solution(name, x64):
    # conflicting gradients: the solvers' solutions have several free coordinates
    rng = np.random.default_rng(3)
    base = rng.normal(size=(1, 8))
    j = jnp.asarray(np.concatenate([base + rng.normal(size=(1, 8)), -base + rng.normal(size=(1, 8)),
                                    rng.normal(size=(2, 8))]))
    m = SPECS[name]
    w = np.asarray(m.weights(j @ j.T, **m.kwargs))
    if name == "cagrad":     # w = (1/T + lam w*) / (1 + c^2): w* > 0 where w exceeds 1/T/(1+c^2)
        assert np.sum(w > 1.0 / 4 / 1.16 + 1e-4) >= 2, w
    else:
        assert np.sum(np.abs(w) > 1e-6) >= 2, w
    _fd_check(lambda j: m.weights(j @ j.T, **m.kwargs), (j,), rng)


@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e10, 1e30])
def test_project_simplex_over_float32_range(scale):
    import optax
    from jaxmtl.solvers import project_simplex
    x = np.random.default_rng(0).normal(size=6).astype(np.float32) * np.float32(scale)
    p = np.asarray(project_simplex(x))
    assert np.all(p >= 0) and abs(p.sum() - 1.0) < 1e-5, p
    np.testing.assert_allclose(p, optax.projections.projection_simplex(jnp.asarray(x)), atol=1e-6)
