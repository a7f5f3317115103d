"""Loss weightings: one file per method; weights computed from the task losses.

A method module is the one place that defines its method: the factory, its state type,
its registry entries (:func:`jaxmtl.registry.register` on the factory) and, in its
``__all__``, the names that ``jaxmtl`` re-exports. This package imports the modules named
in ``METHOD_MODULES``, in that order, which is the registry's order (a test checks the
list against the files); ``jaxmtl.weighting.linear`` is the module, ``jaxmtl.linear`` the
factory.
"""
from importlib import import_module

METHOD_MODULES = tuple(import_module(f"{__name__}.{name}") for name in (
    "linear", "uncertainty", "uw_optimal", "uw_so", "imtl_l", "dwa", "gradnorm", "famo", "auto_lambda",
    "geometric_mean", "stch", "scale_invariant", "rlw",
))

__all__ = ["METHOD_MODULES"]
