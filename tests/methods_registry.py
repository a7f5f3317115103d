"""Every jaxmtl method, built per task count, with the inputs it needs (shared by the tests)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxmtl


@dataclass(frozen=True)
class Spec:
    make: Callable[[int], object]            # num_tasks -> transformation
    one_task_identity: bool = False          # T = 1 returns the task's gradient
    non_conflicting: bool = False            # J d >= 0 (up to a documented ridge)
    permutation_invariant: bool = False      # deterministic and equivariant to permuting tasks
    scale: str | None = None                 # "linear" (d(cJ) = c d(J)) or "invariant"
    extra_batches: bool = False
    losses: bool = False                     # reads the losses (ValueError without them)
    unique_only: bool = False                # invariances tested on well-conditioned rank-T J only
                                             # (ill-posed or discontinuous at rank deficiency)


SPECS = {
    "linear": Spec(lambda t: jaxmtl.linear(num_tasks=t), True, False, True, "linear"),
    "linear_mean": Spec(lambda t: jaxmtl.linear(reduction="mean", num_tasks=t), True, False, True, "linear"),
    "mgda": Spec(lambda t: jaxmtl.mgda(num_tasks=t), True, True, True, "linear"),
    "mgda_l2": Spec(lambda t: jaxmtl.mgda("l2", num_tasks=t), True, False, True, "linear",
                    unique_only=True),
    "mgda_loss+": Spec(lambda t: jaxmtl.mgda("loss+", num_tasks=t), True, False, True, "linear",
                       unique_only=True, losses=True),
    "pcgrad": Spec(lambda t: jaxmtl.pcgrad(num_tasks=t), True, False, False, "linear"),
    "upgrad": Spec(lambda t: jaxmtl.upgrad(num_tasks=t), True, True, True, "linear"),
    "dualproj": Spec(lambda t: jaxmtl.dualproj(num_tasks=t), True, True, True, "linear"),
    "imtl_g": Spec(lambda t: jaxmtl.imtl_g(num_tasks=t), True, False, True, "linear", unique_only=True),
    "aligned_mtl": Spec(lambda t: jaxmtl.aligned_mtl(num_tasks=t), True, False, True, "linear",
                        unique_only=True),
    "config": Spec(lambda t: jaxmtl.config(num_tasks=t), True, False, True, "linear", unique_only=True),
    "cagrad": Spec(lambda t: jaxmtl.cagrad(num_tasks=t), False, False, True, "linear"),
    "nash_mtl": Spec(lambda t: jaxmtl.nash_mtl(num_tasks=t), False, True, True, "invariant",
                     unique_only=True),
    "fairgrad": Spec(lambda t: jaxmtl.fairgrad(num_tasks=t), False, True, True, "invariant",
                     unique_only=True),
    "graddrop": Spec(lambda t: jaxmtl.graddrop(num_tasks=t), True),
    "gradvac": Spec(lambda t: jaxmtl.gradvac(num_tasks=t), True, False, False, "linear"),
    "moco": Spec(lambda t: jaxmtl.moco(num_tasks=t), losses=True),
    "db_mtl": Spec(lambda t: jaxmtl.db_mtl(num_tasks=t), losses=True),
    "excess_mtl": Spec(lambda t: jaxmtl.excess_mtl(num_tasks=t), True, False, True, "linear"),
    "sdmgrad": Spec(lambda t: jaxmtl.sdmgrad(num_tasks=t), extra_batches=True),
    "modo": Spec(lambda t: jaxmtl.modo(num_tasks=t), extra_batches=True),
    # loss weightings
    "uncertainty": Spec(lambda t: jaxmtl.uncertainty(num_tasks=t), False, False, True, "linear", losses=True),
    "imtl_l": Spec(lambda t: jaxmtl.imtl_l(num_tasks=t), True, False, True, "linear", losses=True),
    "dwa": Spec(lambda t: jaxmtl.dwa(num_tasks=t), True, False, True, "linear", losses=True),
    "gradnorm": Spec(lambda t: jaxmtl.gradnorm(num_tasks=t), True, False, True, "linear", losses=True),
    "famo": Spec(lambda t: jaxmtl.famo(num_tasks=t), True, False, True, "linear", losses=True),
    "uw_optimal": Spec(lambda t: jaxmtl.uw_optimal(num_tasks=t), True, False, True, "linear", losses=True),
    "uw_so": Spec(lambda t: jaxmtl.uw_so(num_tasks=t), True, False, True, "linear", losses=True),
    "geometric_mean": Spec(lambda t: jaxmtl.geometric_mean(num_tasks=t), True, False, True, "linear",
                           losses=True),
    "stch": Spec(lambda t: jaxmtl.stch(num_tasks=t), True, False, True, "linear", losses=True),
    "rlw": Spec(lambda t: jaxmtl.rlw(num_tasks=t), True, losses=False),
    "scale_invariant": Spec(lambda t: jaxmtl.scale_invariant(num_tasks=t), True, False, True, "linear",
                            losses=True),
}


@functools.lru_cache(maxsize=None)
def built(name: str, t: int):
    m = SPECS[name].make(t)
    return m, jax.jit(m.update)


def inputs(name: str, j, losses=None):
    """``(params, extra kwargs)`` for one update on the stacked gradients ``j``."""
    j = jnp.asarray(j)
    t = j.shape[0]
    kwargs = {"losses": jnp.linspace(1.0, 2.0, t) if losses is None else jnp.asarray(losses)}
    if SPECS[name].extra_batches:
        kwargs["extra_task_grads"] = (j, j)
    return jnp.zeros(j.shape[1:], j.dtype), kwargs


def aggregate_and_weights(name: str, j, *, losses=None):
    """One jitted update of method ``name`` on ``j`` (shape ``(T, P)``): ``(d, state.weights)``."""
    j = jnp.asarray(j)
    m, update = built(name, j.shape[0])
    params, kwargs = inputs(name, j, losses)
    out, state = update(j, m.init(params), params, **kwargs)
    return np.asarray(out, np.float64), np.asarray(state.weights, np.float64)


def aggregate(name: str, j, *, losses=None) -> np.ndarray:
    """One jitted update of method ``name`` on ``j`` (shape ``(T, P)``), as float64."""
    return aggregate_and_weights(name, j, losses=losses)[0]
