"""No attribute of a jaxmtl package hides one of its submodules.

A public function named like its module (``jaxmtl.gramian`` the function in
``jaxmtl/gramian.py``) makes ``jaxmtl.gramian`` mean two things: docstrings
that point at the module and ``import jaxmtl.gramian as m`` get the function.
So a package attribute named like a submodule must be that submodule.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import pytest

import jaxmtl

SUBMODULES = sorted(info.name for info in pkgutil.walk_packages(jaxmtl.__path__, "jaxmtl."))


def test_the_walk_covers_the_core_and_the_extras():
    for name in ("jaxmtl.gramians", "jaxmtl.jacobians", "jaxmtl.partitioning", "jaxmtl.protocol",
                 "jaxmtl.aggregators.upgrad", "jaxmtl.weighting.linear", "jaxmtl.solvers",
                 "jaxmtl.data.prefetching", "jaxmtl.models", "jaxmtl.training.steps", "jaxmtl.metrics.base",
                 "jaxmtl.analysis.conflict"):
        assert name in SUBMODULES


@pytest.mark.parametrize("name", SUBMODULES)
def test_no_attribute_shadows_a_submodule(name):
    module = importlib.import_module(name)
    parent, _, short = name.rpartition(".")
    found = getattr(sys.modules[parent], short, module)
    assert found is module, f"{parent}.{short} is {found!r}, not the module {name}: rename the module"
