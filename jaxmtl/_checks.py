"""Argument checks shared by every factory: validated when concrete, traced otherwise.

``optax.inject_hyperparams`` calls a factory again inside ``update`` with its
numeric hyperparameters as (possibly traced) arrays, so a factory may only
check a value when it is concrete; a traced value is used as it is.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array, or ``None`` when it is traced (abstract)."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def check(name: str, value: Any, ok: Callable[[np.ndarray], Any], requirement: str) -> None:
    """Raises ``ValueError('<name> must be <requirement>, got <value>')`` when ``value``
    is concrete and ``ok(value)`` is false (also for NaN)."""
    v = concrete(value)
    if v is None:
        return
    if not np.all(np.isfinite(v)) or not np.all(ok(v)):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")


def one_of(name: str, value: Any, options: Sequence[Any]) -> None:
    """Checks a static choice (a string such as ``reduction``)."""
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")


def static_int(value: Any) -> int | None:
    """A concrete integer argument as ``int``; ``None`` when it is ``None`` or traced."""
    if value is None:
        return None
    v = concrete(value)
    if v is None:
        return None
    if v.ndim != 0 or not np.issubdtype(v.dtype, np.number) or v != np.round(v):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(v)


def task_count(num_tasks: Any, name: str, why: str | None = None) -> int | None:
    """Validates ``num_tasks``: a positive int, or ``None`` (allowed unless ``why`` says
    why the method needs it). Returns ``None`` when it is traced (inside
    ``inject_hyperparams``' update, where the state already has its shape)."""
    if num_tasks is None:
        if why is not None:
            raise ValueError(f"{name} needs num_tasks >= 1 ({why})")
        return None
    if isinstance(num_tasks, jax.core.Tracer):
        return None
    t = static_int(num_tasks)
    if t is None or t < 1:
        raise ValueError(f"{name}: num_tasks must be an integer >= 1, got {num_tasks!r}")
    return t


def as_float(value: Any) -> jax.Array:
    """A hyperparameter as a float32 array (``inject_hyperparams`` may give it another dtype)."""
    return jnp.asarray(value, jnp.float32)


def task_vector(name: str, value: Any, t: int) -> jax.Array:
    """A per-task vector argument (``pref``, ``weights``, ...) checked against ``T`` tasks."""
    v = jnp.asarray(value, jnp.float32)
    if v.shape != (t,):
        raise ValueError(f"{name} has shape {v.shape} but there are {t} tasks: expected ({t},)")
    return v
