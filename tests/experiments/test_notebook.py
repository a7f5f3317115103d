"""The cloud-notebook quickstart runs top to bottom (CPU, the ``tiny`` preset, fake Fashion-MNIST),
runs the study in its own process with the progress streamed, and finds jaxmtl's source in an
uploaded archive."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import write_fake_fashion_mnist

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow   # 41 s on 2 cores: the tiny preset end to end, as tests/test_compare_methods.py
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    data = write_fake_fashion_mnist(tmp_path / "fashion", n_train=700, n_test=300)
    monkeypatch.setenv("JAXMTL_NOTEBOOK_PRESET", "tiny")
    monkeypatch.setenv("JAXMTL_FASHION_MNIST_DIR", str(data))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("JAXMTL_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(ROOT / "notebooks" / "jaxmtl_quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "preset tiny" in outputs and "cpu" in outputs
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert (tmp_path / "out" / "summary.md").exists()
    # the study ran in the kernel (its main called, no second process) and streamed its progress
    study = next(c for c in nb.cells if c.cell_type == "code" and "compare_methods" in c.source)
    assert "compare_methods.main(argv)" in study.source and "subprocess" not in study.source
    streamed = "".join(o.get("text", "") for o in study.outputs if o.get("name") == "stderr")
    assert "step" in streamed


def _install_cell_functions() -> dict:
    """``is_source`` and ``find_source`` of the notebook's install cell (its definitions only)."""
    nb = nbformat.read(ROOT / "notebooks" / "jaxmtl_quickstart.ipynb", as_version=4)
    source = nb.cells[1].source
    namespace: dict = {}
    exec(source[:source.index("ROOT = find_source()")], namespace)
    return namespace


@pytest.mark.parametrize("top", ["", "jaxmtl-main/"])   # git archive's layout, and GitHub's ZIP
def test_install_cell_finds_the_source_in_an_uploaded_archive(tmp_path, monkeypatch, top):
    tree = tmp_path / "made" / top
    for name in ("jaxmtl", "experiments"):
        (tree / name).mkdir(parents=True)
    (tree / "pyproject.toml").write_text("[project]\nname = 'jaxmtl'\n")
    upload = tmp_path / "content"
    upload.mkdir()
    shutil.make_archive(str(upload / "jaxmtl"), "zip", tmp_path / "made")
    monkeypatch.chdir(upload)
    found = Path(_install_cell_functions()["find_source"]())
    assert found == (upload / "jaxmtl_src" / top).resolve() and (found / "experiments").is_dir()


def test_install_cell_says_what_to_upload_when_there_is_no_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="upload the repository as jaxmtl.zip"):
        _install_cell_functions()["find_source"]()
