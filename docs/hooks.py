"""mkdocs hooks: the pages generated from the code, and Sphinx roles in docstrings as links.

* ``api/<name>.md``, one page per name of ``jaxmtl.__all__`` (its docstring through
  mkdocstrings, from the module that defines it), ``api/index.md`` listing them by module, and
  one page per sub-package (``jaxmtl.analysis``, ...); the nav's "API" section lists them;
* ``methods.md``: the registry's table (``jaxmtl.registry.markdown_table``, the README's),
  the names each method answers to, and what each needs at ``update`` time;
* docstrings are reStructuredText-flavoured (``:func:`jaxmtl.upgrad```): after rendering, a
  role becomes a link to the name's API page when it has one, plain code otherwise.
"""
from __future__ import annotations

import inspect
import re
import sys
import types
from collections import defaultdict
from pathlib import Path

from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's jaxmtl, as mkdocstrings' paths
import jaxmtl  # noqa: E402
from jaxmtl import aggregators, registry, weighting  # noqa: E402

SUBPACKAGES = ("analysis", "solvers", "data", "models", "metrics", "training")
"""Sub-packages with a page each (their ``__all__``); the last four need the ``experiments`` extra."""
_ROLE = re.compile(r":(?:func|class|mod|data|attr|meth|obj):(<code>(?:~|!)?([\w.]+)</code>)")


def _target(name: str) -> str:
    """The import path mkdocstrings documents ``jaxmtl.<name>`` from (its defining module)."""
    obj = getattr(jaxmtl, name)
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return f"{obj.__module__}.{obj.__qualname__}"


def _groups() -> dict[str, list[str]]:
    """``jaxmtl.__all__`` by the module that defines each name, method modules first in registry order."""
    groups: dict[str, list[str]] = defaultdict(list)
    method_modules = [m.__name__ for m in (*weighting.METHOD_MODULES, *aggregators.METHOD_MODULES)]
    for module in method_modules:
        groups[module] = []
    for name in jaxmtl.__all__:
        obj = getattr(jaxmtl, name)
        groups[obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__].append(name)
    return dict(groups)


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _api_index(groups: dict[str, list[str]]) -> str:
    lines = ["# API", "",
             "Every public name of `jaxmtl` (`jaxmtl.__all__`), one page each, by the module that defines it;",
             "then the sub-packages. The methods table with what each method needs and claims is on",
             "[Methods](../methods.md).", ""]
    for module, names in groups.items():
        lines += [f"## `{module}`", "", "| name | summary |", "|---|---|"]
        lines += [f"| [`jaxmtl.{n}`]({n}.md) | {_summary(getattr(jaxmtl, n))} |" for n in names]
        lines.append("")
    lines += ["## Sub-packages", ""]
    lines += [f"* [`jaxmtl.{p}`]({p}.md)" for p in SUBPACKAGES]
    return "\n".join(lines) + "\n"


def _methods_page() -> str:
    by_name = defaultdict(list)
    for key, name in registry.names().items():
        by_name[name].append(key)
    lines = [
        "# Methods", "",
        "Generated from `jaxmtl.registry`: one row per registered configuration. `registry.build(name, "
        "num_tasks=T)` builds it; the factory column is the call it stands for. *needs* is "
        "`MethodInfo.requirements` (what a training loop must give: the full Jacobian or a Gramian, the "
        "losses, `num_tasks` at construction, extra batches, other `update` arguments, a PRNG key). The "
        "property columns are the claims each entry makes, each one tested for every entry that makes it "
        "(`tests/jaxmtl/test_methods_common.py`, `tests/jaxmtl/test_contract.py`): *non-conflicting* "
        "`J d >= 0`; *common scale* how `d` follows a common positive rescaling of the gradients; *per-task "
        "scales* how it follows one factor per task; *permutation* equivariance to reordering the tasks; "
        "*T = 1*: with one task the update is its gradient.", "",
        registry.markdown_table(), "",
        "## Names", "",
        "`jaxmtl.registry.resolve` (and `registry.get`, `registry.build`, every study's `--methods`) takes "
        "a method by its registry name, its label or an alias, in any case and with or without `_`, `-`, "
        "spaces and parentheses, so the names of LibMTL (`UW`, `Nash_MTL`, `DB_MTL`, ...) and TorchJD "
        "(`UPGrad`, `IMTLG`, `NashMTL`, `Sum`, `Random`, ...) work as they are.", "",
        "| registry name | label | also answers to (normalised) |", "|---|---|---|"]
    for m in registry.entries():
        lines.append(f"| `{m.name}` | {m.label} | {', '.join(f'`{k}`' for k in sorted(by_name[m.name]))} |")
    lines += ["", "## Kinds", "",
              "* **loss**: loss weightings, which minimise `sum_t w_t L_t` (their heads are weighted too: "
              "`jaxmtl.partition(..., task_of=...)`);",
              "* **gramian**: weightings of the Gramian `G = J J^T`, each with a public weighting function "
              "(`jaxmtl.upgrad_weights`, ...) that takes a Gramian of any origin;",
              "* **gradient**: other gradient aggregators (tracked gradients, extra batches);",
              "* **coordinate**: coordinate-wise aggregators (no task weights).", ""]
    return "\n".join(lines)


def on_config(config):
    """Fills the nav's "API" entry with the generated pages."""
    groups = _groups()
    section = [{"Index": "api/index.md"}]
    for module, names in groups.items():
        section.append({module.removeprefix("jaxmtl."): [{n: f"api/{n}.md"} for n in names]})
    section.append({"sub-packages": [{f"jaxmtl.{p}": f"api/{p}.md"} for p in SUBPACKAGES]})
    for item in config["nav"]:
        if isinstance(item, dict) and "API" in item:
            item["API"] = section
    return config


def on_files(files, config):
    def add(path: str, text: str) -> None:
        files.append(File.generated(config, path, content=text))

    groups = _groups()
    for names in groups.values():
        for name in names:
            add(f"api/{name}.md", f"# `jaxmtl.{name}`\n\n::: {_target(name)}\n")
    for package in SUBPACKAGES:
        add(f"api/{package}.md", f"# `jaxmtl.{package}`\n\n::: jaxmtl.{package}\n")
    add("api/index.md", _api_index(groups))
    add("methods.md", _methods_page())
    return files


def on_page_content(html, page, config, files):
    """``:func:`name``` as rendered from a docstring: a link to ``api/<name>.md`` where ``name``
    (without ``jaxmtl.``) has a page, otherwise the code alone."""
    def link(match: re.Match) -> str:
        code, name = match.group(1), match.group(2)
        short = name.removeprefix("jaxmtl.")
        target = files.get_file_from_path(f"api/{short}.md")
        if target is None:
            return code
        return f'<a href="{get_relative_url(target.url, page.url)}">{code}</a>'

    return _ROLE.sub(link, html)
