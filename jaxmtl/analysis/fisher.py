"""Trace of the empirical Fisher information from per-example gradients (Paper B).

For per-example gradients ``g_1 .. g_S`` of the loss (the Fisher of the model's
predictive distribution estimated with the observed labels: the *empirical*
Fisher ``F = (1/S) sum_i g_i g_i^T``),

    tr F = (1/S) sum_i |g_i|^2,

one of the trajectory quantities Mueller et al. (2024) test as an explanation of
the multi-task generalization gap (after Jastrzebski et al. 2021, "Catastrophic
Fisher explosion").
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmtl.analysis._examples import per_task, rescale, scaled_examples, squared_norms


def fisher_trace(per_example_grads: Any, *, task_axis: bool = False) -> jax.Array:
    """``tr F = mean_i |g_i|^2`` of per-example gradients.

    ``per_example_grads``: a pytree (an array is one) whose leaves are
    ``(S, *param.shape)``, every leaf's row ``i`` being example ``i``'s
    gradient; the result is a scalar. With ``task_axis=True`` the leaves are
    ``(S, T, *param.shape)``, as :func:`jaxmtl.analysis.per_sample_jacobian`
    gives them (``(S, T, P)``), and the result is ``(T,)``: each task's own
    Fisher trace. (Without it, a task axis would count as parameter entries and
    the result would be the sum of the tasks' traces.)

    Computed in float32 (float64 for float64 input, any input dtype accepted) on
    gradients divided by each task's largest entry, so no intermediate sum
    overflows; the result is finite whenever the trace itself is representable
    and ``inf`` (never NaN) when it exceeds the float range (gradient entries
    beyond ~1e19 in float32). 0 for zero gradients. Jit-compatible.
    """
    x = scaled_examples(per_example_grads, task_axis)
    return per_task(rescale(jnp.mean(squared_norms(x.blocks), axis=0), x.peak), task_axis)
