"""The method protocol: what every jaxmtl method does around its own rule.

A jaxmtl method is an ``optax.GradientTransformationExtraArgs`` whose
``update(task_grads, state, params=None, *, losses=None, **extra)`` reduces
the leading task axis of ``task_grads``. :func:`method` wraps a method's own
rule with what all of them share:

* **validation** at trace time: task axes, ``params`` shapes, ``losses`` of
  shape ``(T,)``, the ``num_tasks`` the method was built with, a clear
  ``ValueError`` that names the route (:func:`jaxmtl.multi_steps`,
  :func:`jaxmtl.skip_nonfinite`) when optax wrappers that cannot carry a task
  axis (``optax.MultiSteps``, ``optax.apply_if_finite``) are used around it:
  recognised by what they pass (parameter-shaped gradients) and by their
  public state types among the callers, never by optax's private names;
* **non-finite steps**: when the losses, the update or the new state are not
  finite, the step is *skipped*: the update is zero, the state is kept as it
  was, and its ``skipped`` counter goes up by one. One NaN batch never
  corrupts a method's learned state (use :func:`jaxmtl.skip_nonfinite` to keep
  the rest of the chain's state too);
* **dtypes**: the state keeps its dtypes (float32 also under
  ``jax_enable_x64``).

:func:`weighted_method` builds the common case, a method whose update is
``sum_t w_t g_t`` with weights from the Gramian (in :class:`ScaledGramian`
form, finite for any gradient scale), the losses, or its state.

Every state is a ``NamedTuple`` registered with :func:`method_state`, with at
least the fields ``weights`` (``f32[T]``, the task weights of the last update
when the method knows ``T`` — built with ``num_tasks`` — else ``None``) and
``skipped`` (``i32[]``, the number of non-finite steps skipped).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxmtl._checks import task_count
from jaxmtl.gramians import (ScaledGramian, as_scaled, combine, num_tasks as _num_tasks, scaled_gramian,
                             update_dtype)

_STATE_TYPES: set[type] = set()


def method_state(cls: type) -> type:
    """Registers a ``NamedTuple`` class as a method state (it needs ``weights`` and ``skipped``)."""
    missing = {"weights", "skipped"} - set(getattr(cls, "_fields", ()))
    if missing:
        raise TypeError(f"{cls.__name__} lacks the method-state fields {sorted(missing)}")
    _STATE_TYPES.add(cls)
    return cls


def is_method_state(node: Any) -> bool:
    return type(node) in _STATE_TYPES


def find_method_state(state: Any) -> Any:
    """The first method state in a (chained, wrapped) optax state, or ``None``."""
    for node in jax.tree.leaves(state, is_leaf=is_method_state):
        if is_method_state(node):
            return node
    return None


def recorded_weights(state: Any) -> jax.Array | None:
    """``weights`` of the first method state found in a (chained, wrapped) optax state."""
    found = find_method_state(state)
    return None if found is None else found.weights


@method_state
class WeightsState(NamedTuple):
    """State of a method that keeps nothing but what every method records."""

    weights: jax.Array | None  # f32[T]: the last weights (None unless built with num_tasks)
    skipped: jax.Array         # i32[]: non-finite steps skipped


def initial_weights(num_tasks: int | None, value: float | None = None) -> jax.Array | None:
    """``f32[T]`` filled with ``value`` (default ``1/T``), or ``None`` when ``T`` is unknown."""
    if num_tasks is None:
        return None
    return jnp.full((num_tasks,), 1.0 / num_tasks if value is None else value, jnp.float32)


def no_skips() -> jax.Array:
    return jnp.zeros((), jnp.int32)


UpdateFn = Callable[..., tuple[Any, Any]]


def method(update_fn: UpdateFn, init_fn: Callable[[Any], Any], *, name: str,
           num_tasks: int | None = None, needs_losses: bool = False) -> optax.GradientTransformationExtraArgs:
    """Wraps ``update_fn(task_grads, state, *, t, params, losses, extra) -> (updates, state)``.

    ``t`` is the validated task count, ``losses`` float32 ``(T,)`` or ``None``,
    ``extra`` the other extra arguments. See the module docstring for what is
    added around it.
    """

    built: list = []  # the state type this instance's init built

    def init(params):
        state = init_fn(params)
        built[:] = [type(state)]
        return state

    def update(task_grads, state, params=None, *, losses=None, **extra):
        _refuse_optax_wrappers()
        t = _num_tasks(task_grads, params=params, losses=losses, expected=num_tasks)
        _check_state(name, state, init_fn, built, task_grads, params)
        if needs_losses and losses is None:
            raise ValueError(f"{name} needs the task losses: pass them as "
                             "tx.update(task_grads, state, params, losses=losses)")
        if losses is not None:
            losses = jnp.asarray(losses, jnp.float32)
        updates, new_state = update_fn(task_grads, state, t=t, params=params, losses=losses, extra=extra)
        if "combination" in extra:
            raise ValueError(f"{name} does not take combination=: only a method whose update is "
                             "sum_t w_t g_t (jaxmtl.weighted_method) can combine without the Jacobian")
        return skip_if_nonfinite(updates, new_state, state, losses)

    return optax.GradientTransformationExtraArgs(init, update)


def _check_state(name: str, state: Any, init_fn: Callable[[Any], Any], built: list,
                 task_grads: Any, params: Any) -> None:
    """Raises a ``TypeError`` naming the state ``name`` expects when ``state`` is not of the
    type its ``init`` builds (the type recorded by this instance's ``init``, else found by
    abstract evaluation of ``init`` at trace time)."""
    expected = built[0] if built else None
    if expected is None:
        if params is None:
            params = jax.tree.map(lambda g: jax.ShapeDtypeStruct(jnp.shape(g)[1:], jnp.result_type(g)),
                                  task_grads)
        try:
            expected = type(jax.eval_shape(init_fn, params))
        except Exception:  # noqa: BLE001 - an init that cannot run here: check the fields only
            expected = None
    got = type(state)
    if expected is not None and got is expected:
        return
    fields = getattr(got, "_fields", None)
    if not is_method_state(state) and fields is not None and (
            fields == getattr(expected, "_fields", ()) or
            (expected is None and {"weights", "skipped"} <= set(fields))):
        return  # a state rebuilt as another tuple with the same fields (e.g. from a checkpoint)
    if expected is None and is_method_state(state):
        return
    want = f" ({expected.__name__})" if expected is not None else ""
    what = ("None" if state is None else
            f"{got.__name__}, the state of another method" if is_method_state(state) else
            f"an object of type {got.__module__}.{got.__qualname__}")
    raise TypeError(f"{name}: update expected the state built by {name}'s init{want}, got {what}. "
                    "Pass the state returned by this method's init (or by its previous update).")


def all_finite(tree: Any) -> jax.Array:
    """``True`` when every floating leaf of ``tree`` is finite (``True`` for no leaf)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def skip_if_nonfinite(updates: Any, new_state: Any, old_state: Any, losses: Any = None):
    """The guard of every method: keeps ``old_state`` (``skipped + 1``) and returns a
    zero update unless ``losses``, ``updates`` and ``new_state`` are all finite."""
    ok = all_finite((updates, new_state, losses))
    state = jax.tree.map(lambda new, old: jnp.where(ok, new, old).astype(jnp.result_type(old)),
                         new_state, old_state)
    state = state._replace(skipped=old_state.skipped + jnp.where(ok, 0, 1).astype(jnp.int32))
    updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
    return updates, state


WeightFn = Callable[..., tuple[jax.Array, Any]]


def weighted_method(weight_fn: WeightFn, *, name: str, num_tasks: int | None = None,
                    init_fn: Callable[[Any], Any] | None = None, uses_gramian: bool = True,
                    needs_losses: bool = False) -> optax.GradientTransformationExtraArgs:
    """A method whose update is ``sum_t w_t g_t``, from
    ``weight_fn(gram, state, *, t, losses, extra, grads) -> (w, state)``.

    ``gram`` is the Gramian of ``task_grads`` as a :class:`ScaledGramian` (or the
    ``gramian=`` extra argument, a Gramian of any origin such as representation
    gradients, brought to that form), ``None`` when ``uses_gramian`` is false.
    The ``combination=`` extra argument, ``w -> [sum_t w_t g_t per leaf of task_grads]``,
    replaces ``combine(w, task_grads)`` (the update from one backward pass of the
    weighted loss, :mod:`jaxmtl.flax_gramian`: ``task_grads`` is then read for its
    shapes only).
    ``init_fn(params)`` builds the state (default :class:`WeightsState`). The
    weights are recorded in ``state.weights`` when the state has them.
    """
    if init_fn is None:
        def init_fn(params):
            del params
            return WeightsState(initial_weights(num_tasks), no_skips())

    def update_fn(task_grads, state, *, t, params, losses, extra):
        del params
        override = extra.pop("gramian", None)
        combination = extra.pop("combination", None)
        gram = None
        if uses_gramian:
            gram = scaled_gramian(task_grads) if override is None else _override(override, t)
        w, state = weight_fn(gram, state, t=t, losses=losses, extra=extra, grads=task_grads)
        w = jnp.asarray(w, jnp.float32)
        if w.shape != (t,):
            raise ValueError(f"{name}: the weighting returned shape {w.shape}; expected ({t},)")
        if state.weights is not None:
            state = state._replace(weights=w)
        if combination is None:
            return combine(w, task_grads), state
        return _combined(combination(w), task_grads), state

    return method(update_fn, init_fn, name=name, num_tasks=num_tasks, needs_losses=needs_losses)


def gramian_method(weights_fn: Callable[..., jax.Array], *, name: str, num_tasks: Any = None,
                   needs_losses: bool = False, **hyperparams: Any) -> optax.GradientTransformationExtraArgs:
    """A stateless Gramian method: ``update = combine(weights_fn(G, **hyperparams), J)``.

    ``weights_fn`` is the method's public weighting (given the Gramian in
    :class:`ScaledGramian` form, and ``losses=`` when ``needs_losses``): the single
    source of truth of both paths.
    """

    def weight_fn(gram, state, *, losses, **_):
        extra = {"losses": losses} if needs_losses else {}
        return weights_fn(gram, **extra, **hyperparams), state

    return weighted_method(weight_fn, name=name, num_tasks=task_count(num_tasks, name),
                           needs_losses=needs_losses)


def _combined(leaves: list, task_grads: Any) -> Any:
    """The ``combination=`` extra argument's leaves in the structure and dtypes of an update."""
    treedef = jax.tree.structure(task_grads)
    grads = jax.tree.leaves(task_grads)
    if len(leaves) != len(grads) or any(jnp.shape(u) != jnp.shape(g)[1:] for u, g in zip(leaves, grads)):
        raise ValueError(f"combination returned shapes {[jnp.shape(u) for u in leaves]}; expected "
                         f"{[jnp.shape(g)[1:] for g in grads]}")
    return jax.tree.unflatten(treedef, [jnp.asarray(u).astype(update_dtype(jnp.result_type(g)))
                                        for u, g in zip(leaves, grads)])


def _override(gramian: Any, t: int) -> ScaledGramian:
    shape = jnp.shape(gramian.gram if isinstance(gramian, ScaledGramian) else gramian)
    if shape != (t, t):
        raise ValueError(f"gramian has shape {shape}; expected ({t}, {t}) for {t} tasks")
    return as_scaled(gramian)


_ROUTES = (
    (optax.ApplyIfFiniteState,
     "optax.apply_if_finite cannot wrap a chain that starts with a jaxmtl method: on a rejected "
     "step it returns the stacked task gradients (T, *param.shape) where the chain returns "
     "parameter-shaped updates. Use jaxmtl.skip_nonfinite(tx): it skips the whole chain's step, "
     "method state included."),
    (optax.MultiStepsState,
     "optax.MultiSteps accumulates parameter-shaped gradients, but a jaxmtl method takes stacked "
     "per-task gradients (and is not linear in them, so averaging its updates is not averaging "
     "the gradients). Use jaxmtl.multi_steps(tx, every_k, num_tasks=T): it averages the task "
     "Jacobians over the micro-batches and applies the method to the mean."),
)


def _refuse_optax_wrappers() -> None:
    """Raises with the supported route when an optax wrapper that cannot carry a task axis
    is among the callers.

    A wrapper is recognised by its *public* state type (``optax.ApplyIfFiniteState``,
    ``optax.MultiStepsState``) held by a caller in optax, not by the names of optax's
    private functions, so a refactoring of the wrappers' bodies does not blind it. It is
    the second line: what ``optax.MultiSteps`` passes (parameter-shaped gradients, when
    it traces its skip branch) is refused by the task-axis check of
    :func:`jaxmtl.gramians.num_tasks`, whose message names both routes too. Runs when
    the update is traced (every call only in eager mode).
    """
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__", "").partition(".")[0] == "optax":
            for value in list(frame.f_locals.values()):
                for state_type, route in _ROUTES:
                    if isinstance(value, state_type):
                        raise ValueError(route)
        frame = frame.f_back
