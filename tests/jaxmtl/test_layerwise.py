"""The layer-wise Gramian path against the Jacobian-based one, on every route."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxmtl
from jaxmtl.layerwise import Dense, dense_route, layerwise_value_and_gramian, layerwise_weighted_value_and_grad


def scale(p, h):
    return h * p["s"]


LAYERS = (Dense(), jax.nn.relu, Dense(), scale, jnp.tanh, Dense())


def problem(t, batch=6, widths=(5, 7, 4, 3), seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 8)
    w = lambda i, a, b: jax.random.normal(k[i], (a, b)) / np.sqrt(a)
    trunk = [{"w": w(0, widths[0], widths[1]), "b": 0.1 * jnp.ones(widths[1])}, (),
             {"w": w(1, widths[1], widths[2]), "b": jnp.zeros(widths[2])},
             {"s": jax.random.normal(k[2], (widths[2],))}, (),
             {"w": w(3, widths[2], widths[3])}]                      # a Dense layer without bias
    heads = {"w": jax.random.normal(k[4], (t, widths[3], 3)), "b": jnp.zeros((t, 3))}
    x = jax.random.normal(k[5], (batch, widths[0]))
    y = jax.random.randint(k[6], (batch, t), 0, 3)
    return {"trunk": trunk, "heads": heads}, x, y


def head_loss(h, heads, y):
    logits = jnp.einsum("bf,tfc->tbc", h, heads["w"]) + heads["b"][:, None]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y.T), axis=1)


def composed(params, x, y):
    h = x
    for layer, p in zip(LAYERS, params["trunk"]):
        h = layer(p, h) if jax.tree.leaves(p) else layer(h)
    return head_loss(h, params["heads"], y)


def trunk_mask(params):
    return {"trunk": jax.tree.map(lambda _: True, params["trunk"]),
            "heads": jax.tree.map(lambda _: False, params["heads"])}


def by_norms(g):
    """A cheap Gramian weighting (the weighting itself is not under test here)."""
    return jnp.diag(g) / jnp.trace(g)


@functools.lru_cache(maxsize=None)
def reference(t):
    """The Jacobian-based Gramian and update of the composed loss (jitted once per T)."""
    params, x, y = problem(t)
    _, jac = jax.jit(jaxmtl.value_and_jacobian(composed, shared=trunk_mask(params)))(params, x, y)
    out = jax.jit(jaxmtl.weighted_value_and_grad(composed, by_norms, shared=trunk_mask(params)))(params, x, y)
    return jaxmtl.gramian(jac["trunk"]), out


@pytest.mark.parametrize("route,t", [("activations", 3), ("parameters", 3), ("auto", 1)])
def test_gramian_and_update_equal_the_jacobian_path(route, t):
    params, x, y = problem(t)
    _, g = jax.jit(layerwise_value_and_gramian(LAYERS, head_loss, route=route))(params, x, y)
    losses, w, grads = jax.jit(layerwise_weighted_value_and_grad(LAYERS, head_loss, by_norms,
                                                                 route=route))(params, x, y)
    g_ref, (ref_losses, ref_w, ref_grads) = reference(t)
    np.testing.assert_allclose(g, g_ref, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-6)
    np.testing.assert_allclose(w, ref_w, rtol=1e-4, atol=1e-6)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_jit_equals_no_jit_and_heads_can_be_weighted():
    params, x, y = problem(4)
    gram = layerwise_value_and_gramian(LAYERS, head_loss, route="activations")
    for a, b in zip(gram(params, x, y), jax.jit(gram)(params, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    f = layerwise_weighted_value_and_grad(LAYERS, head_loss, by_norms, weight_heads=True)
    _, w, grads = jax.jit(f)(params, x, y)
    weighted = jax.grad(lambda h: w @ composed(h, x, y))(params)["heads"]
    for a, b in zip(jax.tree.leaves(grads["heads"]), jax.tree.leaves(weighted)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def stacked_head_loss(t, head, h, y):
    logits = h @ head["w"] + head["b"]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y[:, t]))


@pytest.mark.parametrize("weight_heads", [False, True])
def test_stacked_heads_give_the_same_gramian_and_update(weight_heads):
    params, x, y = problem(3)
    kw = dict(route="activations", weight_heads=weight_heads)
    stacked = jax.jit(layerwise_weighted_value_and_grad(LAYERS, stacked_head_loss, by_norms, stacked_heads=True,
                                                        **kw))(params, x, y)
    plain = jax.jit(layerwise_weighted_value_and_grad(LAYERS, head_loss, by_norms, **kw))(params, x, y)
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_rows_of_a_sequence_input_are_summed():
    """A Dense layer on (batch, length, in) inputs: the weight gradient sums over all rows."""
    layers = (Dense(),)
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    params = {"trunk": [{"w": jax.random.normal(k[0], (4, 3)), "b": jnp.zeros(3)}],
              "heads": jax.random.normal(k[1], (2, 3))}
    x = jax.random.normal(k[2], (5, 6, 4))
    loss = lambda h, heads: jnp.mean(jnp.einsum("blo,to->tbl", h, heads) ** 2, axis=(1, 2))
    _, g = jax.jit(layerwise_value_and_gramian(layers, loss, route="activations"))(params, x)
    _, jac = jax.jit(jaxmtl.value_and_jacobian(lambda p, x: loss(layers[0](p["trunk"][0], x), p["heads"]),
                                               shared=trunk_mask(params)))(params, x)
    np.testing.assert_allclose(g, jaxmtl.gramian(jac["trunk"]), rtol=2e-5)


def test_auto_route_is_the_one_with_fewer_flops():
    assert dense_route(rows=256, width_in=1296, width_out=512, num_tasks=128) == "activations"
    assert dense_route(rows=4096, width_in=64, width_out=64, num_tasks=2) == "parameters"
    assert dense_route(rows=8, width_in=8, width_out=8, num_tasks=1) == "parameters"


def test_bad_input_names_the_problem():
    params, x, y = problem(2)
    with pytest.raises(ValueError, match="route"):
        layerwise_weighted_value_and_grad(LAYERS, head_loss, jaxmtl.upgrad_weights, route="fast")
    with pytest.raises(ValueError, match="layers is empty"):
        layerwise_weighted_value_and_grad((), head_loss, jaxmtl.upgrad_weights)
    f = layerwise_weighted_value_and_grad(LAYERS, head_loss, by_norms)
    with pytest.raises(ValueError, match="one entry per layer"):
        f({"trunk": params["trunk"][:-1], "heads": params["heads"]}, x, y)
    g = layerwise_weighted_value_and_grad(LAYERS, lambda h, p, y: jnp.sum(head_loss(h, p, y)), by_norms)
    with pytest.raises(ValueError, match=r"f32\[T\]"):
        g(params, x, y)
    ragged = dict(params, heads={"w": params["heads"]["w"], "b": params["heads"]["b"][:1]})
    with pytest.raises(ValueError, match="same leading task axis"):
        layerwise_value_and_gramian(LAYERS, stacked_head_loss, stacked_heads=True)(ragged, x, y)
