"""The documentation's code runs: every ``python`` block of the example pages (and of the
home page), in order in one namespace per page, and the ``>>>`` examples of jaxmtl's docstrings.
The site itself is built in strict mode by ``make docs`` (``make test`` runs it first)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import jaxmtl

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "examples").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def code_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if code_blocks(p)], ids=lambda p: p.name)
def test_example_page_runs(page, capsys):
    namespace = {"__name__": f"docs_{page.stem}"}
    for k, block in enumerate(code_blocks(page)):
        exec(compile(block, f"{page.relative_to(ROOT)} (python block {k + 1})", "exec"), namespace)


def test_every_example_page_is_listed_and_has_code():
    index = (ROOT / "docs" / "examples" / "index.md").read_text()
    for page in (ROOT / "docs" / "examples").glob("*.md"):
        if page.name != "index.md":
            assert f"({page.name})" in index and code_blocks(page), page.name


def _modules_with_examples() -> list[str]:
    names = ["jaxmtl"] + [m.name for m in pkgutil.walk_packages(jaxmtl.__path__, "jaxmtl.")]
    return [n for n in names if ">>>" in Path(importlib.util.find_spec(n).origin).read_text()]


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             extraglobs={"jaxmtl": jaxmtl})
    assert result.attempted > 0 and result.failed == 0, result
