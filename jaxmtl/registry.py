"""The registry of jaxmtl's methods: what each is, needs and claims.

One entry per named configuration (``'ew'`` and ``'mean'`` are both
:func:`jaxmtl.linear`): its factory and fixed arguments, its kind, what it
needs at ``update`` time, and the properties it claims. The experiments, the
benchmarks, the property tests and the README's methods table all read it::

    tx = jaxmtl.registry.build("nash_mtl", num_tasks=3)
    [m.name for m in jaxmtl.registry.entries(kind="gramian")]

Names are looked up case-insensitively, ignoring ``_``, ``-``, spaces and
parentheses, among the entries' names, labels and aliases, so the names users
bring from LibMTL and TorchJD work (:func:`resolve`)::

    >>> from jaxmtl import registry
    >>> [registry.resolve(n) for n in ("UW", "Nash_MTL", "IMTLG", "Aligned_MTL", "Sum", "Random")]
    ['uncertainty', 'nash_mtl', 'imtl_g', 'aligned_mtl', 'ew', 'rlw']
    >>> registry.get("SDMGrad").requirements
    ('num_tasks', 'extra_task_grads (2 batches)')

An entry is written where its method is, by :func:`register` on the factory
(stacked for several configurations of one factory, listed in registry order
from the top)::

    @register("mgda", "MGDA", "gramian", "Désidéri 2012; Sener & Koltun 2018",
              weights=mgda_weights, non_conflicting=True, scale="linear", one_task_identity=True)
    @register("mgda_l2", "MGDA (l2)", "gramian", "Sener & Koltun 2018",
              kwargs={"normalization": "l2"}, weights=mgda_weights, ...)
    def mgda(normalization="none", *, reg=1e-6, num_tasks=None): ...

The method packages (``jaxmtl.weighting``, then ``jaxmtl.aggregators``) import
their method modules in the order they list them; that import order is the
registry's order (and the README table's).

Kinds:

* ``'gramian'``: a weighting of the Gramian ``G = J J^T`` (public ``weights``
  function; accepts ``gramian=`` of any origin);
* ``'gradient'``: other gradient aggregators (tracked gradients in the state,
  cross-Gramians of extra batches);
* ``'coordinate'``: coordinate-wise aggregators (no task weights);
* ``'loss'``: loss weightings, which minimise ``sum_t w_t L_t`` (their heads are
  weighted too, see :func:`jaxmtl.partition`'s ``task_of``).

Needs (summed up by :attr:`MethodInfo.requirements`): ``needs_losses``,
``needs_num_tasks``, ``extra_batches`` (the number of extra independent batches
whose task gradients ``update`` takes as ``extra_task_grads``), ``extra_args``
(other extra arguments of ``update`` without which the method does not do what
its paper does, e.g. Auto-Lambda's ``val_grad``), ``optional_args`` (extra
arguments that bring the method closer to its paper when a training loop can give
them, e.g. FAMO's ``prev_batch_losses``), ``random`` (a PRNG key in the state).

Claimed properties (each tested for every entry that claims it):

* ``non_conflicting``: ``J d >= 0`` (up to the method's documented ridge);
* ``scale``: ``'linear'`` (``d(cJ) = c d(J)``) or ``'invariant'`` (``d(cJ) = d(J)``)
  under a common positive rescaling;
* ``task_scale``: ``'invariant'`` (``d`` unchanged) or ``'direction'`` (``d``'s
  direction unchanged) when each task's loss, and so its gradient, is
  multiplied by its own positive factor;
* ``permutation``: ``'invariant'`` (deterministic, equivariant to permuting
  the tasks) or ``'distribution'`` (random, equivariant in distribution);
* ``one_task_identity``: with ``T = 1`` the update is that task's gradient;
* ``full_rank_only``: the weights are unique (or continuous) only for a
  Jacobian of full row rank, so invariances hold there only.
"""
from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

import optax

KINDS = ("gramian", "gradient", "coordinate", "loss")
_STRUCTURAL = {"num_tasks", "seed", "layer", "optimizer"}
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MethodInfo:
    """One registry entry (see the module docstring)."""

    name: str
    label: str
    factory: Callable[..., optax.GradientTransformationExtraArgs]
    kind: str
    paper: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights: Callable[..., Any] | None = None
    needs_losses: bool = False
    needs_num_tasks: bool = False
    extra_batches: int = 0
    extra_args: tuple[str, ...] = ()
    optional_args: tuple[str, ...] = ()
    random: bool = False
    non_conflicting: bool = False
    scale: str | None = None
    task_scale: str | None = None
    permutation: str | None = "invariant"
    one_task_identity: bool = False
    full_rank_only: bool = False
    aliases: tuple[str, ...] = ()

    def build(self, num_tasks: int | None = None, **overrides: Any) -> optax.GradientTransformationExtraArgs:
        """The transformation with this entry's arguments, ``overrides`` and ``num_tasks``."""
        return self.factory(**{**self.kwargs, **overrides}, num_tasks=num_tasks)

    @property
    def requirements(self) -> tuple[str, ...]:
        """What a training loop must give this method: ``'gramian'`` (the full Jacobian,
        or a Gramian via ``gramian=``), ``'losses'``, ``'num_tasks'`` (at construction),
        ``'extra_task_grads (N batches)'``, the names of other required ``update``
        arguments, and ``'prng key'`` (drawn from ``seed``)."""
        return ((("gramian",) if self.kind == "gramian" else ()) + (("losses",) if self.needs_losses else ())
                + (("num_tasks",) if self.needs_num_tasks else ())
                + ((f"extra_task_grads ({self.extra_batches} batches)",) if self.extra_batches else ())
                + self.extra_args + (("prng key",) if self.random else ()))

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The factory's numeric hyperparameters and their values in this entry (all of
        them traceable: they work under ``optax.inject_hyperparams``)."""
        out = {}
        for name, p in inspect.signature(self.factory).parameters.items():
            value = self.kwargs.get(name, p.default)
            if name not in _STRUCTURAL and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = value
        return out

    @property
    def signature(self) -> str:
        """``factory(arg=default, ...)`` with this entry's fixed arguments."""
        params = []
        for name, p in inspect.signature(self.factory).parameters.items():
            if name == "num_tasks":
                continue
            value = self.kwargs.get(name, p.default)
            params.append(f"{name}={value!r}")
        return f"{self.factory.__name__}({', '.join(params)})"


METHODS: dict[str, MethodInfo] = {}
"""Every registered method by name, in registration order."""


def register(name: str, label: str, kind: str, paper: str, **fields: Any) -> Callable[[_F], _F]:
    """Decorator: registers the decorated factory as the entry ``name`` (see
    :class:`MethodInfo` for ``fields``) and returns it unchanged.

    Registrations stacked on one factory keep their top-to-bottom order in the
    registry (decorators run bottom-up: each goes in before the factory's
    entries registered so far). A name registered twice is a ``ValueError``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def decorate(factory: _F) -> _F:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].factory.__module__} "
                             f"and {factory.__module__})")
        info = MethodInfo(name, label, factory, kind, paper, **fields)
        rows = list(METHODS.values())
        at = len(rows)
        while at > 0 and rows[at - 1].factory is factory:
            at -= 1
        rows.insert(at, info)
        METHODS.clear()
        METHODS.update((m.name, m) for m in rows)
        return factory

    return decorate


def _key(name: str) -> str:
    return re.sub(r"[\s_\-().]", "", name).lower()


def names() -> dict[str, str]:
    """Every name a method can be looked up by (normalised: lower case without ``_``, ``-``,
    spaces, dots and parentheses) and the registry name it stands for: each entry's name,
    label and aliases. Two entries claiming one name is a ``ValueError``."""
    out: dict[str, str] = {}
    for m in METHODS.values():
        for alias in {m.name, m.label, *m.aliases}:
            key = _key(alias)
            if out.setdefault(key, m.name) != m.name:
                raise ValueError(f"the name {alias!r} is claimed by the methods {out[key]!r} and {m.name!r}")
    return out


def resolve(name: str) -> str:
    """The registry name of ``name``: a registry name, a label or an alias, in any case, with
    or without ``_``/``-`` (LibMTL's ``Nash_MTL``, TorchJD's ``NashMTL`` and ``'nash_mtl'``
    all give ``'nash_mtl'``). An unknown name is a ``ValueError`` that lists the close ones
    and every registry name."""
    known = names()
    found = known.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(_key(name), list(known), n=3)
        hint = f" (did you mean {', '.join(dict.fromkeys(known[c] for c in close))}?)" if close else ""
        raise ValueError(f"unknown method {name!r}{hint}; known: {', '.join(METHODS)}")
    return found


def get(name: str) -> MethodInfo:
    """The entry of ``name``, resolved by :func:`resolve`."""
    return METHODS[resolve(name)]


def build(name: str, num_tasks: int | None = None, **overrides: Any) -> optax.GradientTransformationExtraArgs:
    """``get(name).build(num_tasks, **overrides)``."""
    return get(name).build(num_tasks, **overrides)


def entries(*, kind: str | None = None) -> list[MethodInfo]:
    """The entries, optionally of one kind, in registry order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return [m for m in METHODS.values() if kind is None or m.kind == kind]


def markdown_table() -> str:
    """The methods table of the README and the documentation, generated from the registry:
    one row per entry with its registry name (``registry.build(name)``), its factory with
    the entry's arguments, what it needs (:attr:`MethodInfo.requirements`) and the
    properties it claims (each tested)."""
    head = ("| method | registry name | factory (defaults) | paper | kind | needs | non-conflicting "
            "| common scale | per-task scales | permutation | T = 1: the gradient |")
    lines = [head, "|" + "---|" * 11]
    for m in METHODS.values():
        needs = ", ".join(f"`{r}`" for r in m.requirements) or "—"
        lines.append(f"| {m.label} | `{m.name}` | `{m.signature}` | {m.paper} | {m.kind} | {needs} | "
                     f"{'yes' if m.non_conflicting else 'no'} | {m.scale or '—'} | {m.task_scale or '—'} | "
                     f"{m.permutation or '—'} | {'yes' if m.one_task_identity else 'no'} |")
    return "\n".join(lines)
