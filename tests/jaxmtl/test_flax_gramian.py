"""The lean Gramian path of Flax models equals the Jacobian path on every model of jaxmtl.models."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.data import tasks as T
from jaxmtl.flax_gramian import lean_jacobian, value_and_gramian, weighted_value_and_grad
from jaxmtl.layerwise import dense_route
from jaxmtl.models import MixedLeNet, MultiLeNet, apply_toy, init_toy, shared_mask
from jaxmtl.training import make_task_train_step, task_losses
from tests.jaxmtl.test_benchmark_models import CASES


class MLP(nn.Module):
    """A Flax MLP trunk (one Dense layer called twice: rows of both calls share its kernel)."""

    num_tasks: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        again = nn.Dense(6)
        h = nn.relu(again(nn.relu(nn.Dense(6, name="first")(x))))
        z = nn.relu(again(h))
        return tuple(nn.Dense(1, name=f"head_{t}")(z)[:, 0] for t in range(self.num_tasks))


def mlp_mask(params):
    return {k: not k.startswith("head_") for k in params}


def _classification(model, t):
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 10, (3, t)).astype(np.int32)
    return model, {"image": x, "labels": labels}, T.classification_tasks([f"t{i}" for i in range(t)]), "image"


def _problem(name):
    """``(model, variables, batch, tasks, input key, shared mask)`` at a tiny size."""
    if name == "mlp":
        batch = {"x": np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32),
                 "targets": np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)}
        model, tasks, key, mask = MLP(), T.regression_tasks(["a", "b", "c"], [1.0, 1.0, 1.0]), "x", mlp_mask
    elif name == "multilenet":
        (model, batch, tasks, key), mask = _classification(MultiLeNet(num_tasks=3, dropout=0.5), 3), shared_mask
    elif name == "mixedlenet":
        model, batch, tasks, key = _classification(MixedLeNet(heads=("classify", "classify"), dropout=0.5), 2)
        mask = shared_mask
    else:
        make, make_batch, tasks, key = CASES[name]
        model, batch, mask = make(), make_batch(), shared_mask
    variables = model.init(jax.random.PRNGKey(0), batch[key])
    return model, variables, batch, tasks, key, mask


def _loss_fn(model, tasks, key):
    def loss_fn(params, state, batch, rng):
        out, state = model.apply({"params": params, **state}, batch[key], train=True, rngs={"dropout": rng},
                                 mutable=list(state))
        return task_losses(out, batch, tasks), state

    return loss_fn


def _close(a, b, tol=2e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(np.max(np.abs(b)), 1e-30))


SLOW = pytest.mark.slow   # convolutions compile slowly on CPU (the lean path adds nothing to them)


@pytest.mark.parametrize("name", ["mlp", "multilenet", *[pytest.param(n, marks=SLOW)
                                                          for n in ("mixedlenet", *sorted(CASES))]])
def test_gramian_update_and_state_equal_the_jacobian_path(name):
    model, variables, batch, tasks, key, mask = _problem(name)
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    loss_fn, t = _loss_fn(model, tasks, key), len(tasks)
    w = jnp.linspace(0.2, 1.0, t)

    @jax.jit
    def both(params, state, batch, rng):
        (losses, new_state), lean = lean_jacobian(loss_fn, has_aux=True, shared=mask, route="activations")(
            params, state, batch, rng)
        (ref_losses, ref_state), jac = jaxmtl.value_and_jacobian(loss_fn, has_aux=True, shared=mask)(
            params, state, batch, rng)
        shared = [g for g, m in zip(jax.tree.leaves(jac), jax.tree.leaves(jaxmtl.resolve_mask(mask, params))) if m]
        return ((losses, new_state, lean.gramian.gram * lean.gramian.scale**2, lean.combination(w), lean.routed,
                 lean.task_grads),
                (ref_losses, ref_state, jaxmtl.gramian(shared), jaxmtl.combine(w, shared), jac))

    (losses, new_state, g, update, routed, task_grads), (ref_losses, ref_state, ref_g, ref_update, jac) = \
        both(params, state, batch, jax.random.PRNGKey(3))
    assert routed == {"mlp": 2, "multilenet": 1, "mixedlenet": 1, "mpnn": 8}.get(name, 0)
    np.testing.assert_array_equal(losses, ref_losses)
    jax.tree.map(np.testing.assert_array_equal, new_state, ref_state)   # batch statistics: one forward pass
    _close(g, ref_g)
    for u, r in zip(update, ref_update):
        _close(u, r)
    mask_leaves = jax.tree.leaves(jaxmtl.resolve_mask(mask, params))
    for m, a, b in zip(mask_leaves, jax.tree.leaves(task_grads), jax.tree.leaves(jac)):
        if not m:   # the heads' gradients, as the Jacobian path gives them
            _close(a, b)


def test_parameters_route_is_the_jacobian_path_bit_for_bit():
    model, variables, batch, tasks, key, mask = _problem("mlp")
    loss_fn = _loss_fn(model, tasks, key)
    args = (variables["params"], {}, batch, jax.random.PRNGKey(0))
    g = jax.jit(value_and_gramian(loss_fn, has_aux=True, shared=mask, route="parameters"))(*args)[1]
    _, jac = jax.jit(jaxmtl.value_and_jacobian(loss_fn, has_aux=True, shared=mask))(*args)
    np.testing.assert_array_equal(g, jaxmtl.gramian({k: v for k, v in jac.items() if mask(jac)[k]}))


def _wide_mlp():
    """The Flax MLP on 2 rows of width 40: its first layer is on the activations route at T = 3."""
    model, _, batch, tasks, key, mask = _problem("mlp")
    batch = dict(batch, x=np.random.default_rng(2).normal(size=(2, 40)).astype(np.float32),
                 targets=batch["targets"][:2])
    return model, model.init(jax.random.PRNGKey(0), batch["x"]), batch, tasks, key, mask


def test_auto_route_follows_the_flop_count():
    """At T = 3 with 2 rows of width 40, the first layer goes by its activations; the layer
    called twice (4 rows of width 6) by its parameters."""
    assert dense_route(2, 40, 6, 3, combine_by_backward=True) == "activations"
    assert dense_route(4, 6, 6, 3, combine_by_backward=True) == "parameters"
    assert dense_route(4, 6, 6, 3) == "activations"   # without the combination's backward pass
    model, variables, batch, tasks, key, mask = _wide_mlp()
    lean = lean_jacobian(_loss_fn(model, tasks, key), has_aux=True, shared=mask)
    routed = jax.jit(lambda *a: lean(*a)[1].routed)(variables["params"], {}, batch, jax.random.PRNGKey(0))
    assert routed == 1


def test_toy_without_flax_layers_is_the_jacobian_path():
    params = init_toy(jax.random.PRNGKey(0), num_tasks=2)
    x, y = jnp.linspace(-1.0, 1.0, 5), jnp.stack([jnp.sin(jnp.linspace(0, 3, 5))] * 2)

    def loss_fn(p):
        return jnp.mean((apply_toy(p, x) - y) ** 2, axis=1)

    norms = lambda g: jaxmtl.cosine_form(g).norms   # noqa: E731 - a cheap weighting of a Gramian of any origin
    value, w, grads = jax.jit(weighted_value_and_grad(loss_fn, norms, shared=shared_mask))(params)
    ref_value, ref_w, ref_grads = jax.jit(jaxmtl.weighted_value_and_grad(loss_fn, norms, shared=shared_mask))(params)
    _close(value, ref_value)
    _close(w, ref_w)
    jax.tree.map(_close, grads, ref_grads)


def _steps(method, lean):
    model, variables, batch, tasks, key, mask = _wide_mlp()
    tx = optax.chain(jaxmtl.partition(jaxmtl.registry.build(method, num_tasks=3), mask), optax.sgd(0.1))
    step = make_task_train_step(model.apply, tx, tasks, shared=mask, input_key=key, lean_gramian=lean)
    return step, variables, tx.init(variables["params"]), batch


def test_train_step_with_lean_gramian_matches_the_jacobian_step():
    step, variables, opt_state, batch = _steps("upgrad", True)
    ref_step = _steps("upgrad", False)[0]
    new, state, losses = step(variables, opt_state, batch, jax.random.PRNGKey(0))
    ref_new, ref_state, ref_losses = ref_step(variables, opt_state, batch, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(losses, ref_losses)
    jax.tree.map(_close, new, ref_new)
    _close(jaxmtl.recorded_weights(state), jaxmtl.recorded_weights(ref_state))


def test_lean_gramian_refuses_a_method_that_needs_the_jacobian():
    step, variables, opt_state, batch = _steps("graddrop", True)
    with pytest.raises(ValueError, match="graddrop does not take combination=: only a method whose update"):
        step(variables, opt_state, batch, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="a probe needs them all"):
        make_task_train_step(MLP().apply, optax.sgd(0.1), T.regression_tasks(["a"], [1.0]), lean_gramian=True,
                             probe=lambda g, p: 0.0)


class ConvNet(nn.Module):
    """Convolutions of every form the lean path meets: strided SAME, dilated with explicit padding,
    max-pooled, and one with feature groups (left to jax.vjp)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
        h = nn.max_pool(nn.Conv(4, (2, 2), kernel_dilation=2, padding=((1, 2), (0, 1)))(h), (2, 2), (2, 2))
        h = nn.Conv(4, (1, 1), feature_group_count=2)(nn.relu(h)).reshape((x.shape[0], -1))
        return tuple(nn.Dense(1, name=f"head_{t}")(h)[:, 0] for t in range(3))


def test_convolutions_equal_the_jacobian_path_in_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        batch = {"x": rng.normal(size=(2, 9, 8, 3)), "targets": rng.normal(size=(2, 3))}
        model, tasks = ConvNet(), T.regression_tasks(["a", "b", "c"], [1.0, 1.0, 1.0])
        params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.PRNGKey(0), batch["x"])["params"])
        loss_fn = _loss_fn(model, tasks, "x")
        w = jnp.asarray([0.2, 0.5, 1.0])

        @jax.jit
        def both(*args):
            lean = lean_jacobian(loss_fn, has_aux=True, shared=mlp_mask, chunk_size=2)(*args)[1]
            jac = jaxmtl.value_and_jacobian(loss_fn, has_aux=True, shared=mlp_mask)(*args)[1]
            mask = jax.tree.leaves(jaxmtl.resolve_mask(mlp_mask, jac))
            shared = [g for g, m in zip(jax.tree.leaves(jac), mask) if m]
            return ((lean.task_grads, lean.gramian.gram * lean.gramian.scale**2, lean.combination(w)),
                    (jac, jaxmtl.gramian(shared), jaxmtl.combine(w, shared)))

        lean, ref = both(params, {}, batch, jax.random.PRNGKey(0))
        assert lean[0]["Conv_0"]["kernel"].dtype == jnp.float64
        jax.tree.map(lambda a, b: _close(a, b, 1e-12), lean, ref)


@pytest.mark.parametrize("enabled,calls", [(None, 3), (False, 0)])
def test_the_jacobian_step_traces_its_convolutions_under_fast_conv_backward_on_cpu(monkeypatch, enabled, calls):
    """make_task_train_step's Jacobian path: every nn.Conv call goes through conv_vjp (CPU, the
    default); fast_convolutions=False leaves them to lax."""
    import jaxmtl.flax_gramian as fg

    seen = []

    def counted(*args, **kwargs):
        seen.append(1)
        return jax.lax.conv_general_dilated(*args, **kwargs)

    monkeypatch.setattr(fg, "conv_general_dilated", counted)
    batch = {"x": jnp.ones((2, 9, 8, 3)), "targets": jnp.ones((2, 3))}
    model, tx = ConvNet(), optax.sgd(0.1)
    params = model.init(jax.random.PRNGKey(0), batch["x"])["params"]
    step = make_task_train_step(model.apply, tx, T.regression_tasks(["a", "b", "c"], [1.0, 1.0, 1.0]),
                                shared=mlp_mask, input_key="x", fast_convolutions=enabled)
    jax.eval_shape(step, {"params": params}, tx.init(params), batch, jax.random.PRNGKey(0))
    assert jax.default_backend() == "cpu" and len(seen) == calls
