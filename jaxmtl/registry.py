"""The registry of jaxmtl's methods: what each is, needs and claims.

One entry per named configuration (``'ew'`` and ``'mean'`` are both
:func:`jaxmtl.linear`): its factory and fixed arguments, its kind, what it
needs at ``update`` time, and the properties it claims. The experiments, the
benchmarks, the property tests and the README's methods table all read it::

    tx = jaxmtl.registry.build("nash_mtl", num_tasks=3)
    [m.name for m in jaxmtl.registry.entries(kind="gramian")]

Kinds:

* ``'gramian'``: a weighting of the Gramian ``G = J J^T`` (public ``weights``
  function; accepts ``gramian=`` of any origin);
* ``'gradient'``: other gradient aggregators (tracked gradients in the state,
  cross-Gramians of extra batches);
* ``'coordinate'``: coordinate-wise aggregators (no task weights);
* ``'loss'``: loss weightings, which minimise ``sum_t w_t L_t`` (their heads are
  weighted too, see :func:`jaxmtl.partition`'s ``task_of``).

Needs: ``needs_losses``, ``needs_num_tasks``, ``extra_batches``
(``extra_task_grads``), ``extra_args`` (other extra arguments of ``update``
without which the method does not do what its paper does, e.g. Auto-Lambda's
``val_grad``), ``random`` (a PRNG key in the state).

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

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optax

from jaxmtl import aggregators as agg
from jaxmtl import weighting as lw

KINDS = ("gramian", "gradient", "coordinate", "loss")
_STRUCTURAL = {"num_tasks", "seed", "layer", "optimizer"}


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
    extra_batches: bool = False
    extra_args: tuple[str, ...] = ()
    random: bool = False
    non_conflicting: bool = False
    scale: str | None = None
    task_scale: str | None = None
    permutation: str | None = "invariant"
    one_task_identity: bool = False
    full_rank_only: bool = False

    def build(self, num_tasks: int | None = None, **overrides: Any) -> optax.GradientTransformationExtraArgs:
        """The transformation with this entry's arguments, ``overrides`` and ``num_tasks``."""
        return self.factory(**{**self.kwargs, **overrides}, num_tasks=num_tasks)

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


def _entries() -> dict[str, MethodInfo]:
    g, loss = "gramian", "loss"
    rows = [
        MethodInfo("ew", "EW", lw.linear, loss, "Kurin et al. 2022; Elich et al. 2023",
                   scale="linear", one_task_identity=True),
        MethodInfo("mean", "Unit. Scal.", lw.linear, loss, "Kurin et al. 2022; Gama & Grassi 2025",
                   kwargs={"reduction": "mean"}, scale="linear", one_task_identity=True),
        MethodInfo("mgda", "MGDA", agg.mgda, g, "Désidéri 2012; Sener & Koltun 2018",
                   weights=agg.mgda_weights, non_conflicting=True, scale="linear", one_task_identity=True),
        MethodInfo("mgda_l2", "MGDA (l2)", agg.mgda, g, "Sener & Koltun 2018", kwargs={"normalization": "l2"},
                   weights=agg.mgda_weights, scale="linear", one_task_identity=True, full_rank_only=True),
        MethodInfo("mgda_loss_plus", "MGDA (loss+)", agg.mgda, g, "Sener & Koltun 2018",
                   kwargs={"normalization": "loss+"}, weights=agg.mgda_weights, needs_losses=True,
                   scale="linear", one_task_identity=True, full_rank_only=True),
        MethodInfo("edm", "EDM", agg.edm, g, "Katrutsa et al. 2020", weights=agg.edm_weights,
                   non_conflicting=True, scale="linear", task_scale="direction", one_task_identity=True,
                   full_rank_only=True),
        MethodInfo("cdtt", "CDTT", agg.cdtt, g, "Nakamura et al. 2022", weights=agg.cdtt_weights,
                   needs_losses=True, needs_num_tasks=True, permutation=None, one_task_identity=True,
                   full_rank_only=True),
        MethodInfo("pcgrad", "PCGrad", agg.pcgrad, g, "Yu et al. 2020", weights=agg.pcgrad_weights,
                   random=True, scale="linear", permutation="distribution", one_task_identity=True),
        MethodInfo("upgrad", "UPGrad", agg.upgrad, g, "Quinton & Rey 2024", weights=agg.upgrad_weights,
                   non_conflicting=True, scale="linear", one_task_identity=True),
        MethodInfo("dualproj", "DualProj", agg.dualproj, g, "Quinton & Rey 2024",
                   weights=agg.dualproj_weights, non_conflicting=True, scale="linear", one_task_identity=True),
        MethodInfo("imtl_g", "IMTL-G", agg.imtl_g, g, "Liu et al. 2021", weights=agg.imtl_g_weights,
                   scale="linear", task_scale="direction", one_task_identity=True, full_rank_only=True),
        MethodInfo("imtl", "IMTL", agg.imtl, g, "Liu et al. 2021", weights=agg.imtl_weights,
                   needs_losses=True, needs_num_tasks=True, scale="linear", task_scale="direction",
                   one_task_identity=True, full_rank_only=True),
        MethodInfo("aligned_mtl", "Aligned-MTL", agg.aligned_mtl, g, "Senushkin et al. 2023",
                   weights=agg.aligned_mtl_weights, scale="linear", one_task_identity=True,
                   full_rank_only=True),
        MethodInfo("con_fig", "ConFIG", agg.con_fig, g, "Liu et al. 2024", weights=agg.con_fig_weights,
                   scale="linear", task_scale="direction", one_task_identity=True, full_rank_only=True),
        MethodInfo("cagrad", "CAGrad", agg.cagrad, g, "Liu et al. 2021", weights=agg.cagrad_weights,
                   scale="linear"),
        MethodInfo("nash_mtl", "Nash-MTL", agg.nash_mtl, g, "Navon et al. 2022",
                   weights=agg.nash_mtl_weights, non_conflicting=True, scale="invariant",
                   task_scale="invariant", full_rank_only=True),
        MethodInfo("fairgrad", "FairGrad", agg.fairgrad, g, "Ban & Ji 2024", weights=agg.fairgrad_weights,
                   non_conflicting=True, scale="invariant", task_scale="invariant", full_rank_only=True),
        MethodInfo("rotograd", "RotoGrad (scaling)", agg.rotograd, g, "Javaloy & Valera 2022",
                   weights=agg.rotograd_weights, needs_num_tasks=True, scale="linear", task_scale="direction",
                   one_task_identity=True),
        MethodInfo("graddrop", "GradDrop", agg.graddrop, "coordinate", "Chen et al. 2020", random=True,
                   permutation="distribution", one_task_identity=True),
        MethodInfo("gradvac", "GradVac", agg.gradvac, g, "Wang et al. 2021", weights=agg.gradvac_weights,
                   needs_num_tasks=True, random=True, scale="linear", permutation="distribution",
                   one_task_identity=True),
        MethodInfo("moco", "MoCo", agg.moco, "gradient", "Fernando et al. 2023", needs_losses=True,
                   needs_num_tasks=True),
        MethodInfo("db_mtl", "DB-MTL", agg.db_mtl, "gradient", "Lin et al. 2023", needs_losses=True,
                   needs_num_tasks=True, task_scale="invariant"),
        MethodInfo("excess_mtl", "ExcessMTL", agg.excess_mtl, "gradient", "He et al. 2024",
                   needs_num_tasks=True, scale="linear", one_task_identity=True),
        MethodInfo("sdmgrad", "SDMGrad", agg.sdmgrad, "gradient", "Xiao et al. 2023", needs_num_tasks=True,
                   extra_batches=True),
        MethodInfo("modo", "MoDo", agg.modo, "gradient", "Chen et al. 2023", needs_num_tasks=True,
                   extra_batches=True),
        MethodInfo("uncertainty", "UW", lw.uncertainty, loss, "Kendall et al. 2018", needs_losses=True,
                   needs_num_tasks=True, scale="linear"),
        MethodInfo("uw_optimal", "UW-O", lw.uw_optimal, loss, "Elich et al. 2023", needs_losses=True,
                   scale="linear", task_scale="invariant"),
        MethodInfo("uw_so", "UW-SO", lw.uw_so, loss, "Kirchdorfer et al. 2024", needs_losses=True,
                   scale="linear", one_task_identity=True),
        MethodInfo("imtl_l", "IMTL-L", lw.imtl_l, loss, "Liu et al. 2021", needs_losses=True,
                   needs_num_tasks=True, scale="linear", one_task_identity=True),
        MethodInfo("dwa", "DWA", lw.dwa, loss, "Liu et al. 2019", needs_losses=True, needs_num_tasks=True,
                   scale="linear", one_task_identity=True),
        MethodInfo("gradnorm", "GradNorm", lw.gradnorm, loss, "Chen et al. 2018", needs_losses=True,
                   needs_num_tasks=True, scale="linear", one_task_identity=True),
        MethodInfo("famo", "FAMO", lw.famo, loss, "Liu et al. 2023", needs_losses=True, needs_num_tasks=True,
                   scale="linear", one_task_identity=True),
        MethodInfo("auto_lambda", "Auto-Lambda", lw.auto_lambda, loss, "Liu et al. 2022",
                   needs_num_tasks=True, extra_args=("val_grad",), scale="linear"),
        MethodInfo("geometric_mean", "GLS", lw.geometric_mean, loss, "Chennupati et al. 2019",
                   needs_losses=True, scale="linear", one_task_identity=True),
        MethodInfo("stch", "STCH", lw.stch, loss, "Lin et al. 2024", needs_losses=True, scale="linear",
                   one_task_identity=True),
        MethodInfo("scale_invariant", "SI", lw.scale_invariant, loss, "Navon et al. 2022; Gama & Grassi 2025",
                   needs_losses=True, scale="linear", task_scale="invariant"),
        MethodInfo("rlw", "RLW", lw.rlw, loss, "Lin et al. 2022", random=True, permutation="distribution",
                   one_task_identity=True),
        MethodInfo("rlw_dirichlet", "RLW (Dirichlet)", lw.rlw, loss, "Lin et al. 2022",
                   kwargs={"distribution": "dirichlet"}, random=True, permutation="distribution",
                   one_task_identity=True),
    ]
    return {m.name: m for m in rows}


METHODS: dict[str, MethodInfo] = _entries()
"""Every registered method by name."""


def get(name: str) -> MethodInfo:
    """The entry ``name``; a ``ValueError`` lists the known names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def build(name: str, num_tasks: int | None = None, **overrides: Any) -> optax.GradientTransformationExtraArgs:
    """``get(name).build(num_tasks, **overrides)``."""
    return get(name).build(num_tasks, **overrides)


def entries(*, kind: str | None = None) -> list[MethodInfo]:
    """The entries, optionally of one kind, in registry order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return [m for m in METHODS.values() if kind is None or m.kind == kind]


def markdown_table() -> str:
    """The README's methods table, generated from the registry."""
    def needs(m: MethodInfo) -> str:
        items = (["Gramian"] if m.kind == "gramian" else []) + (["losses"] if m.needs_losses else []) + \
                (["`num_tasks`"] if m.needs_num_tasks else []) + \
                (["`extra_task_grads`"] if m.extra_batches else []) + [f"`{a}`" for a in m.extra_args] + \
                (["PRNG key"] if m.random else [])
        return ", ".join(items) or "—"

    head = ("| method | factory (defaults) | paper | kind | needs | non-conflicting | common scale "
            "| per-task scales | permutation |")
    lines = [head, "|" + "---|" * 9]
    for m in METHODS.values():
        lines.append(f"| {m.label} | `{m.signature}` | {m.paper} | {m.kind} | {needs(m)} | "
                     f"{'yes' if m.non_conflicting else 'no'} | {m.scale or '—'} | {m.task_scale or '—'} | "
                     f"{m.permutation or '—'} |")
    return "\n".join(lines)

