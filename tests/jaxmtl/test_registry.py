"""The registry is complete, the README reads it, the factories are uniform and documented,
and the core runs (the README's usage section, as written) without the research extra."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jaxmtl
from jaxmtl import aggregators, registry, weighting

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FACTORIES = sorted({m.factory for m in registry.entries()}, key=lambda f: f.__name__)


def test_readme_methods_table_is_the_registrys():
    assert registry.markdown_table() in README, \
        "regenerate the table: python -c 'import jaxmtl; print(jaxmtl.registry.markdown_table())'"


@pytest.mark.parametrize("alias, name", [
    # LibMTL's names
    ("EW", "ew"), ("UW", "uncertainty"), ("GradNorm", "gradnorm"), ("GLS", "geometric_mean"), ("RLW", "rlw"),
    ("MGDA", "mgda"), ("DWA", "dwa"), ("PCGrad", "pcgrad"), ("GradVac", "gradvac"), ("IMTL", "imtl"),
    ("CAGrad", "cagrad"), ("Nash_MTL", "nash_mtl"), ("GradDrop", "graddrop"), ("Aligned_MTL", "aligned_mtl"),
    ("DB_MTL", "db_mtl"), ("MoCo", "moco"), ("STCH", "stch"), ("ExcessMTL", "excess_mtl"), ("FAMO", "famo"),
    ("FairGrad", "fairgrad"), ("UPGrad", "upgrad"), ("SDMGrad", "sdmgrad"), ("MoDo", "modo"),
    # TorchJD's aggregators
    ("IMTLG", "imtl_g"), ("NashMTL", "nash_mtl"), ("AlignedMTL", "aligned_mtl"), ("DualProj", "dualproj"),
    ("ConFIG", "con_fig"), ("Mean", "mean"), ("Sum", "ew"), ("Random", "rlw"),
    # labels and the registry's own names in any case
    ("UW-O", "uw_optimal"), ("rlw (dirichlet)", "rlw_dirichlet"), ("MGDA_LOSS_PLUS", "mgda_loss_plus"),
])
def test_resolve_takes_libmtl_and_torchjd_names(alias, name):
    assert registry.resolve(alias) == name
    assert registry.get(alias) is registry.METHODS[name]


def test_every_name_resolves_to_itself_and_unknown_names_are_listed():
    assert all(registry.resolve(m.name) == m.name and registry.resolve(m.label) == m.name
               for m in registry.entries())
    with pytest.raises(ValueError, match=r"unknown method 'nashmt' \(did you mean nash_mtl\?\); known: ew, mean,"):
        registry.resolve("nashmt")


def test_requirements_say_what_a_loop_must_give():
    assert registry.get("sdmgrad").extra_batches == registry.get("modo").extra_batches == 2
    assert registry.get("modo").requirements == ("num_tasks", "extra_task_grads (2 batches)")
    assert registry.get("auto_lambda").requirements == ("num_tasks", "val_grad")
    assert registry.get("upgrad").requirements == ("gramian",)
    assert registry.get("rlw").requirements == ("prng key",)
    assert registry.get("dwa").requirements == ("losses", "num_tasks")


def test_auto_lambda_without_val_grad_warns_once():
    import jax.numpy as jnp
    tx = jaxmtl.auto_lambda(num_tasks=2)
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    grads = {"w": jnp.ones((2, 3))}
    with pytest.warns(UserWarning, match="auto_lambda got neither val_grad nor meta_grad") as caught:
        for _ in range(3):
            _, state = tx.update(grads, state, params)
    assert len(caught) == 1
    np.testing.assert_array_equal(state.weights, np.float32([0.1, 0.1]))   # kept


METHOD_MODULES = [*weighting.METHOD_MODULES, *aggregators.METHOD_MODULES]


def _factory_names(module):
    """The method factories a module defines: its functions named like the module."""
    return {name for name in module.__all__ if name == module.__name__.rpartition(".")[2]}


def test_every_exported_factory_is_registered():
    exported = set().union(*(_factory_names(m) for m in METHOD_MODULES))
    assert exported == {f.__name__ for f in FACTORIES}


def test_every_entry_is_a_top_level_factory():
    for m in registry.entries():
        assert getattr(jaxmtl, m.factory.__name__) is m.factory, m.name
        assert m.factory.__name__ in jaxmtl.__all__
        if m.weights is not None:
            assert getattr(jaxmtl, m.weights.__name__) is m.weights, m.name
            assert m.weights.__module__ == m.factory.__module__, f"{m.name}: weights from another file"


@pytest.mark.parametrize("module", METHOD_MODULES, ids=lambda m: m.__name__)
def test_each_method_file_registers_exactly_its_method(module):
    short = module.__name__.rpartition(".")[2]
    mine = [m for m in registry.entries() if m.factory.__module__ == module.__name__]
    assert mine, f"{module.__name__} registers nothing: decorate {short} with jaxmtl.registry.register"
    assert {m.factory for m in mine} == {getattr(module, short)}
    # what the file exports is what jaxmtl exports, from this file
    for name in module.__all__:
        assert getattr(jaxmtl, name) is getattr(module, name)
        assert getattr(getattr(module, name), "__module__", module.__name__) == module.__name__


def test_the_method_packages_list_every_method_file():
    import pkgutil
    for package in (aggregators, weighting):
        files = {i.name for i in pkgutil.iter_modules(package.__path__) if not i.name.startswith("_")}
        listed = [m.__name__.rpartition(".")[2] for m in package.METHOD_MODULES]
        assert sorted(listed) == sorted(files), f"add the new file to {package.__name__}.METHOD_MODULES"
        assert len(set(listed)) == len(listed)


def test_registry_order_is_the_method_modules_order():
    rank = {m.__name__: i for i, m in enumerate(METHOD_MODULES)}
    order = [rank[m.factory.__module__] for m in registry.entries()]
    assert order == sorted(order)
    assert [m.name for m in registry.entries()][:3] == ["ew", "mean", "uncertainty"]


def test_register_keeps_stacked_order_and_refuses_duplicates():
    assert [m.name for m in registry.entries() if m.factory is jaxmtl.mgda] == \
        ["mgda", "mgda_l2", "mgda_loss_plus"]
    with pytest.raises(ValueError, match="'upgrad' is registered twice"):
        registry.register("upgrad", "UPGrad", "gramian", "2024")(lambda **_: None)
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.register("x", "X", "other", "2024")


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
    references = doc.split("\nReferences:\n")
    assert len(references) == 2 and re.search(r'^  - .+ \((19|20)\d\d\)\. "', references[1], re.M), \
        "end the docstring with a References section: '  - Authors (year). \"Title\"'"
    for p in params:
        assert f"{p.name}:" in doc or f"``{p.name}``" in doc, f"document {p.name}"


def test_help_shows_the_method_documentation():
    doc = inspect.getdoc(jaxmtl.upgrad)
    assert "Quinton & Rey (2024)" in doc and "w_i = argmin" in doc


CORE_ONLY = textwrap.dedent("""
    import sys
    for name in ("flax", "tensorflow_datasets", "tensorflow", "matplotlib", "tqdm", "torch", "orbax"):
        sys.modules[name] = None          # any import of them now fails
    snippet = sys.stdin.read()
    exec(compile(snippet, "README.md", "exec"), {})
    print("ok")
""")


def test_the_core_does_not_import_scipy():
    # scipy comes with jax itself (jaxlib solves with its LAPACK on CPU), so it cannot be blocked above:
    # the core must not use it
    core = [p for p in (ROOT / "jaxmtl").rglob("*.py")
            if p.relative_to(ROOT / "jaxmtl").parts[0] not in ("data", "models", "training", "analysis")]
    assert core and not [p for p in core if re.search(r"^\s*(import|from) scipy", p.read_text(), re.M)]


def test_readme_usage_runs_as_written_with_the_core_only():
    section = README[README.index("## Using the library"):]
    snippet = section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python") + 9)]
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], input=snippet, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


EXTRA_PARTS = textwrap.dedent("""
    import sys
    for name in sys.argv[1:]:
        sys.modules[name] = None          # any import of them now fails
    import jaxmtl, jaxmtl.analysis        # the core, and the analysis tools (jax and numpy only)
    for part in ("data", "models", "training", "metrics"):
        try:
            __import__("jaxmtl." + part)
        except ImportError as err:
            print(part, "|", err.name, "|", err)
        else:
            print(part, "| imported")
""")


@pytest.mark.parametrize("blocked", [("flax", "scipy", "tensorflow_datasets", "matplotlib", "tqdm", "orbax",
                                      "tensorflow"), ("orbax",)], ids=["none", "all-but-orbax"])
def test_the_extra_parts_name_the_extra_when_it_is_missing(blocked):
    out = subprocess.run([sys.executable, "-c", EXTRA_PARTS, *blocked], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" | ", 1) for line in out.stdout.strip().splitlines())
    assert sorted(lines) == ["data", "metrics", "models", "training"]
    for part, message in lines.items():
        name, _, text = message.partition(" | ")
        assert name == blocked[0], (part, message)
        assert f"jaxmtl.{part} needs the 'experiments' extra" in text
        assert "pip install 'jaxmtl[experiments]'" in text
        assert f"missing: {', '.join(b for b in blocked if b != 'tensorflow')})" in text
