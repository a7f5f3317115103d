"""Paper A's loss-scale toy (Elich et al., study A2), in plain JAX.

A scalar input, a backbone of two LeakyReLU layers (``encoder``, 20 units by
default), and ``num_tasks`` heads (``head_<t>``) of one 20-unit LeakyReLU layer
and a linear output, He-initialised. The names match :data:`shared_mask` and
:func:`task_of` of :mod:`jaxmtl.models.multilenet`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def init_toy(key: jax.Array, num_tasks: int = 2, width: int = 20) -> dict:
    """Parameters ``{"encoder": ..., "head_0": ..., ...}`` of the toy."""
    def dense(k, n_in, n_out):
        return {"w": jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / n_in), "b": jnp.zeros(n_out)}

    keys = jax.random.split(key, 2 + 2 * num_tasks)
    params = {"encoder": {"dense_0": dense(keys[0], 1, width), "dense_1": dense(keys[1], width, width)}}
    for t in range(num_tasks):
        params[f"head_{t}"] = {"dense_0": dense(keys[2 + 2 * t], width, width),
                               "dense_1": dense(keys[3 + 2 * t], width, 1)}
    return params


def apply_toy(params: dict, x: jax.Array) -> jax.Array:
    """Predictions ``(T, B)`` for inputs ``x`` ``(B,)``."""
    def layer(p, h):
        return jax.nn.leaky_relu(h @ p["w"] + p["b"])

    h = layer(params["encoder"]["dense_1"], layer(params["encoder"]["dense_0"], x[:, None]))
    heads = sorted((k for k in params if k.startswith("head_")), key=lambda k: int(k.split("_")[1]))
    return jnp.stack([(layer(params[k]["dense_0"], h) @ params[k]["dense_1"]["w"]
                       + params[k]["dense_1"]["b"])[:, 0] for k in heads])
