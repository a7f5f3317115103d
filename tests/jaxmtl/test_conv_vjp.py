"""The hand-derived convolution backward pass equals jax.vjp's (float64)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmtl.conv_vjp import conv, conv_general_dilated, supports

CASES = [  # (input shape, window, strides, padding, kernel dilation)
    ((2, 9, 8, 3), (3, 3), (1, 1), "SAME", (1, 1)),
    ((2, 9, 8, 3), (3, 2), (2, 3), "VALID", (1, 1)),
    ((2, 11, 10, 3), (3, 3), (2, 1), ((2, 1), (0, 3)), (2, 1)),
    ((2, 7, 3), (3,), (2,), "SAME", (1,)),
    ((1, 6, 6, 2), (1, 1), (1, 1), "SAME", None),
    ((1, 6, 7, 2), (3, 3), (2, 2), ((3, 3), (0, 1)), None),   # padding wider than the kernel's reach
]


def _spec(nd):
    return ("NWC", "WIO", "NWC") if nd == 1 else ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("shape,window,strides,padding,dilation", CASES)
def test_value_and_vjp_equal_the_lax_convolution(shape, window, strides, padding, dilation):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x, k = jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=window + (shape[-1], 4)))

        def ref(x, k):
            return jax.lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation,
                                                dimension_numbers=_spec(len(window)))

        y, back = jax.vjp(lambda x, k: conv(x, k, strides, padding, dilation), x, k)
        y_ref, back_ref = jax.vjp(ref, x, k)
        np.testing.assert_array_equal(y, y_ref)
        ct = jnp.asarray(rng.normal(size=y.shape))
        for a, b in zip(back(ct), back_ref(ct)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.max(np.abs(b)))


def test_other_forms_fall_back_to_lax():
    assert supports((2, 8, 8, 4), ("NHWC", "HWIO", "NHWC"), None, 1)
    assert not supports((2, 8, 8, 4), ("NHWC", "HWIO", "NHWC"), None, 2)       # feature groups
    assert not supports((2, 8, 8, 4), ("NHWC", "HWIO", "NHWC"), (2, 2), 1)     # input dilation
    assert not supports((2, 4, 8, 8), ("NCHW", "OIHW", "NCHW"), None, 1)       # channels first
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 4)), jnp.float32)
    k = jnp.ones((3, 3, 2, 6), jnp.float32)
    args = (x, k, (1, 1), "SAME")
    kw = dict(dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2)
    assert "custom_vjp" not in str(jax.make_jaxpr(lambda x, k: conv_general_dilated(x, k, *args[2:], **kw))(x, k))
    np.testing.assert_array_equal(conv_general_dilated(*args, **kw), jax.lax.conv_general_dilated(*args, **kw))


def test_a_flax_conv_with_it_has_the_same_gradients():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    fast = nn.Conv(5, (3, 3), strides=2, conv_general_dilated=conv_general_dilated)
    plain = nn.Conv(5, (3, 3), strides=2)
    params = plain.init(jax.random.PRNGKey(0), x)
    loss = lambda model: lambda p: jnp.sum(jnp.sin(model.apply(p, x)))   # noqa: E731
    assert "custom_vjp" in str(jax.make_jaxpr(loss(fast))(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.max(np.abs(b))),
                 jax.grad(loss(fast))(params), jax.grad(loss(plain))(params))


def test_an_nnx_conv_with_it_has_the_same_gradients():
    from flax import nnx

    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    fast = nnx.Conv(3, 4, (3, 3), padding="VALID", conv_general_dilated=conv_general_dilated, rngs=nnx.Rngs(0))
    plain = nnx.Conv(3, 4, (3, 3), padding="VALID", rngs=nnx.Rngs(0))
    loss = lambda model: jnp.sum(jnp.sin(model(x)))   # noqa: E731
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.max(np.abs(b))),
                 nnx.state(nnx.grad(loss)(fast)), nnx.state(nnx.grad(loss)(plain)))


@pytest.mark.parametrize("shape,window,padding", [((2, 4, 4, 2), (5, 5), "VALID"),   # window wider than the input
                                                  ((0, 6, 6, 2), (3, 3), "SAME")])    # empty batch
def test_an_empty_output_has_the_lax_values_and_gradients(shape, window, padding):
    x, k = jnp.ones(shape), jnp.ones(window + (2, 3))
    ref = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=_spec(2))  # noqa: E731
    y, back = jax.vjp(lambda x, k: conv(x, k, (1, 1), padding), x, k)
    y_ref, back_ref = jax.vjp(ref, x, k)
    assert y.shape == y_ref.shape and 0 in y.shape
    for a, b in zip(back(jnp.ones_like(y)), back_ref(jnp.ones_like(y_ref))):
        np.testing.assert_array_equal(a, b)


def test_reverse_mode_only_hessian_vector_products_equal_lax():
    """A custom_vjp: jax.jvp of the convolution raises (as the module docstring says), jax.jvp of
    its gradient (the Hessian-vector products of jaxmtl.analysis.sharpness) equals lax's."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x, k, v = (jnp.asarray(rng.normal(size=s)) for s in ((2, 6, 5, 2), (3, 3, 2, 3), (3, 3, 2, 3)))
        fast = lambda k: jnp.sum(jnp.sin(conv(x, k, (2, 1), "SAME")))   # noqa: E731
        ref = lambda k: jnp.sum(jnp.sin(jax.lax.conv_general_dilated(x, k, (2, 1), "SAME",  # noqa: E731
                                                                      dimension_numbers=_spec(2))))
        with pytest.raises(TypeError, match="forward-mode"):
            jax.jvp(fast, (k,), (v,))
        hvp = jax.jvp(jax.grad(fast), (k,), (v,))[1]
        np.testing.assert_allclose(hvp, jax.jvp(jax.grad(ref), (k,), (v,))[1], rtol=0,
                                   atol=1e-12 * float(jnp.max(jnp.abs(hvp))))
