"""Gradient aggregators: one file per method; Gramian-based ones expose their weighting.

A method module is the one place that defines its method: the factory, its Gramian
weighting and state type, its registry entries (:func:`jaxmtl.registry.register` on the
factory) and, in its ``__all__``, the names that ``jaxmtl`` re-exports. This package
imports the modules named in ``METHOD_MODULES``, in that order, which is the registry's
order (a test checks the list against the files); ``jaxmtl.aggregators.upgrad`` is the
module, ``jaxmtl.upgrad`` the factory.
"""
from importlib import import_module

METHOD_MODULES = tuple(import_module(f"{__name__}.{name}") for name in (
    "mgda", "edm", "cdtt", "pcgrad", "upgrad", "dualproj", "imtl_g", "imtl", "aligned_mtl", "con_fig",
    "cagrad", "nash_mtl", "fairgrad", "rotograd", "graddrop", "gradvac", "moco", "db_mtl", "excess_mtl",
    "sdmgrad", "modo",
))

__all__ = ["METHOD_MODULES"]
