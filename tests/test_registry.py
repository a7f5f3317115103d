"""The registry is complete, the README reads it, the factories are uniform and documented,
and the core runs (the README's usage section, as written) without the research extra."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import jaxmtl
from jaxmtl import aggregators, registry, weighting

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FACTORIES = sorted({m.factory for m in registry.entries()}, key=lambda f: f.__name__)


def test_readme_methods_table_is_the_registrys():
    assert registry.markdown_table() in README, \
        "regenerate the table: python -c 'import jaxmtl; print(jaxmtl.registry.markdown_table())'"


def test_every_exported_factory_is_registered():
    exported = {name for name in aggregators.__all__ + weighting.__all__
                if not name.endswith(("_weights", "State"))}
    assert exported == {f.__name__ for f in FACTORIES}
    for name in exported:
        assert getattr(jaxmtl, name) is getattr(aggregators if name in aggregators.__all__ else weighting, name)


def test_registry_lookups():
    assert registry.get("nash_mtl").factory is jaxmtl.nash_mtl
    with pytest.raises(ValueError, match="unknown method 'nash'.*known: ew, mean"):
        registry.get("nash")
    assert {m.kind for m in registry.entries()} == set(registry.KINDS)
    assert all(m.weights is not None for m in registry.entries(kind="gramian"))
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.entries(kind="other")


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_factory_signature_and_docstring(factory):
    params = list(inspect.signature(factory).parameters.values())
    # at most one positional hyperparameter, then keyword-only ones, ending with num_tasks=None
    assert sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params) <= 1
    assert params[-1].name == "num_tasks" and params[-1].kind is params[-1].KEYWORD_ONLY
    assert params[-1].default is None
    assert not {p.name for p in params} & {"iters", "niter", "optim_niter", "reg_eps", "inner"}
    doc = inspect.getdoc(factory)
    assert "Args:" in doc and "Returns:" in doc and "num_tasks" in doc
    assert re.search(r"\b(19|20)\d\d\b", doc), "cite the paper"
    for p in params:
        assert f"{p.name}:" in doc or f"``{p.name}``" in doc, f"document {p.name}"


def test_help_shows_the_method_documentation():
    doc = inspect.getdoc(jaxmtl.upgrad)
    assert "Quinton & Rey (2024)" in doc and "w_i = argmin" in doc


CORE_ONLY = textwrap.dedent("""
    import sys
    for name in ("flax", "tensorflow_datasets", "tensorflow", "matplotlib", "tqdm", "torch"):
        sys.modules[name] = None          # any import of them now fails
    snippet = sys.stdin.read()
    exec(compile(snippet, "README.md", "exec"), {})
    print("ok")
""")


def test_the_core_does_not_import_scipy():
    # scipy comes with jax itself, so it cannot be blocked above: the core must not use it
    core = [p for p in (ROOT / "jaxmtl").rglob("*.py")
            if p.relative_to(ROOT / "jaxmtl").parts[0] not in ("data", "models", "training", "analysis")]
    assert core and not [p for p in core if re.search(r"^\s*(import|from) scipy", p.read_text(), re.M)]


def test_readme_usage_runs_as_written_with_the_core_only():
    section = README[README.index("## Using the library"):]
    snippet = section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python") + 9)]
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], input=snippet, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
