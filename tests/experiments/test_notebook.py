"""The cloud-notebook quickstart runs top to bottom (CPU, the ``tiny`` preset, fake Fashion-MNIST)."""
from __future__ import annotations

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
