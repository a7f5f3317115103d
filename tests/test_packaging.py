"""The package as published: metadata, one version source, and a wheel that holds the library only
and imports in a clean environment with the core dependencies only.

The clean environment is built offline: a fresh ``venv`` (no site packages) gets the wheel with
``--no-deps``, and a ``.pth`` file puts on its path a folder of links to the installed
distributions of the core dependencies (``jax``, ``optax``, ``chex``, ``numpy``) and of what they
require in turn, computed from their metadata. Flax, tfds, matplotlib and the rest of the
``experiments`` extra are thus absent, as in ``pip install jaxmtl``. Only the build itself reaches
out: ``pip wheel`` builds in an isolated environment with the backend pyproject.toml asks for
(setuptools>=77, from PyPI or pip's cache; the project's venv may hold an older setuptools).
"""
from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

import jaxmtl

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_metadata_has_one_version_source_and_the_license_file():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "jaxmtl.__version__"}
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()
    assert f"## {jaxmtl.__version__}" in (ROOT / "CHANGELOG.md").read_text()
    assert (ROOT / "jaxmtl" / "py.typed").exists()


def _closure(names: list[str]) -> set[str]:
    """The installed distributions ``names`` and every distribution they require (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = md.distribution(todo.pop())
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _link_distributions(names: set[str], into: Path) -> None:
    """Links the top-level files and folders (packages, modules, dist-info) of ``names`` into ``into``."""
    into.mkdir()
    for name in names:
        dist = md.distribution(name)
        tops = {Path(f).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (into / top).exists() and top != "__pycache__":
                (into / top).symlink_to(src)


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_wheel_holds_the_library_only_and_imports_with_the_core_dependencies(tmp_path):
    # build from a copy of what the wheel is made of, so the checkout gets no build/ or egg-info
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "jaxmtl", src / "jaxmtl", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", src])
    (wheel,) = (tmp_path / "dist").glob("jaxmtl-*.whl")
    assert wheel.name == f"jaxmtl-{jaxmtl.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"jaxmtl", f"jaxmtl-{jaxmtl.__version__}.dist-info"}
    assert "jaxmtl/py.typed" in names
    assert f"jaxmtl-{jaxmtl.__version__}.dist-info/licenses/LICENSE" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    core = [Requirement(r).name for r in PYPROJECT["project"]["dependencies"]]
    deps = _closure(core)
    assert not deps & {"flax", "tensorflow-datasets", "matplotlib", "tqdm", "orbax-checkpoint"}
    _link_distributions(deps, tmp_path / "core")
    (site / "core_dependencies.pth").write_text(str(tmp_path / "core") + "\n")
    script = (
        "import importlib.util, jax.numpy as jnp, optax, jaxmtl\n"
        f"assert jaxmtl.__file__.startswith({str(site)!r}), jaxmtl.__file__\n"
        "assert importlib.util.find_spec('flax') is None and importlib.util.find_spec('experiments') is None\n"
        "g = {'w': jnp.array([[1.0, 0.0], [0.0, 1.0]])}\n"
        "tx = jaxmtl.upgrad()\n"
        "u, _ = tx.update(g, tx.init({'w': jnp.zeros(2)}))\n"
        "print(jaxmtl.__version__, u['w'].tolist())\n"
        "try:\n    import jaxmtl.models\nexcept ImportError as err:\n    print(err)\n")
    out = _run([python, "-c", script], cwd=tmp_path, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}).stdout
    first, error = out.splitlines()
    assert first == f"{jaxmtl.__version__} [0.5, 0.5]"   # UPGrad of two orthogonal unit gradients
    assert error.startswith("jaxmtl.models needs the 'experiments' extra") and "flax" in error
