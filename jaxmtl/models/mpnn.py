"""MPNN for QM9 (Gilmer et al. 2017): edge-network messages, GRU updates, set2set readout,
and one decoder per regression target.

Graphs come as dense, padded arrays (QM9 molecules have at most 29 atoms), a dict
``{"nodes": (B, N, F), "edges": (B, N, N, E), "adjacency": (B, N, N),
"node_mask": (B, N)}`` (see :func:`jaxmtl.data.qm9.graph_batch`). ``steps``
rounds of message passing, shared weights: the edge network maps an edge's
features to a ``d x d`` matrix ``A(e) = sum_k phi_k(e) W_k + W_0`` (an MLP whose
last layer is linear, ``phi`` its ``edge_hidden`` hidden units), the message to
``v`` is ``sum_w adjacency_vw A(e_vw) h_w`` (computed as ``sum_k W_k (sum_w
phi_k(e_vw) h_w)``, never forming the ``N x N x d x d`` matrices) and a GRU
updates ``h_v``. Set2set (Vinyals et al. 2016, ``readout_steps`` LSTM steps)
pools the nodes to ``2 d`` features; each target has its own MLP decoder.

Parameters: ``params["encoder"]`` shared, ``params["head_<t>"]`` target ``t``'s;
``encode`` returns the pooled graph features ``(B, 2 d)``, ``decode`` a tuple of
``(B,)`` predictions.
"""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class Set2Set(nn.Module):
    steps: int = 3

    @nn.compact
    def __call__(self, h, mask):
        b, _, d = h.shape
        lstm = nn.OptimizedLSTMCell(d)
        carry = (jnp.zeros((b, d), h.dtype), jnp.zeros((b, d), h.dtype))
        q_star = jnp.zeros((b, 2 * d), h.dtype)
        for _ in range(self.steps):
            carry, q = lstm(carry, q_star)
            scores = jnp.where(mask, jnp.einsum("bnd,bd->bn", h, q), -jnp.inf)
            att = nn.softmax(scores, axis=-1)
            q_star = jnp.concatenate([q, jnp.einsum("bn,bnd->bd", att, h)], axis=-1)
        return q_star


class MessagePassing(nn.Module):
    features: int = 64
    edge_hidden: int = 128
    steps: int = 3
    readout_steps: int = 3

    @nn.compact
    def __call__(self, graph):
        nodes, edges = graph["nodes"], graph["edges"]
        adj = graph["adjacency"].astype(nodes.dtype)
        mask = graph["node_mask"].astype(bool)
        d, k = self.features, self.edge_hidden
        h = nn.relu(nn.Dense(d)(nodes)) * mask[..., None]
        phi = nn.relu(nn.Dense(k)(edges)) * adj[..., None]                 # (B, N, N, K)
        w = self.param("edge_weights", nn.initializers.lecun_normal(), (k, d, d))
        w0 = self.param("edge_bias", nn.initializers.lecun_normal(), (d, d))
        gru = nn.GRUCell(d)
        b, n = mask.shape
        for _ in range(self.steps):
            gathered = jnp.einsum("bvwk,bwd->bvkd", phi, h)
            m = jnp.einsum("bvkd,kde->bve", gathered, w) + jnp.einsum("bvw,bwd->bvd", adj, h) @ w0
            h, _ = gru(h.reshape(b * n, d), m.reshape(b * n, d))
            h = h.reshape(b, n, d) * mask[..., None]
        return Set2Set(self.readout_steps)(h, mask)


class TargetHead(nn.Module):
    features: int

    @nn.compact
    def __call__(self, z):
        return nn.Dense(1)(nn.relu(nn.Dense(self.features)(z)))[:, 0]


class MPNN(nn.Module):
    """Shared message passing + set2set, one MLP decoder per target (``num_tasks`` of them)."""

    num_tasks: int = 11
    features: int = 64
    edge_hidden: int = 128
    steps: int = 3
    readout_steps: int = 3

    def setup(self):
        self.encoder = MessagePassing(self.features, self.edge_hidden, self.steps, self.readout_steps)
        self.head = [TargetHead(self.features) for _ in range(self.num_tasks)]

    def encode(self, graph, train: bool = False):
        return self.encoder(graph)

    def decode(self, z, train: bool = False):
        return tuple(h(z) for h in self.head)

    def __call__(self, graph, train: bool = False):
        return self.decode(self.encode(graph, train), train)
