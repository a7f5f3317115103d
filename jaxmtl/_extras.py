"""The line between the core and the ``experiments`` extra.

``import jaxmtl`` needs jax, optax, chex and numpy only. ``jaxmtl.data``,
``jaxmtl.models``, ``jaxmtl.training`` and ``jaxmtl.metrics`` come with the
``experiments`` extra; each calls :func:`require_extra` first, so that importing
one without the extra fails with the command that installs it instead of with an
``ImportError`` from deep inside (or, worse, later, at first use).
"""
from __future__ import annotations

import importlib.util
import sys

INSTALL = "pip install 'jaxmtl[experiments]'"
EXTRA_MODULES = ("flax", "scipy", "tensorflow_datasets", "matplotlib", "tqdm", "orbax")
"""The import names of the extra's packages (``pyproject.toml``'s ``experiments``)."""


def _missing(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def missing_modules() -> list[str]:
    """The extra's modules that cannot be imported here (none is imported to find out)."""
    return [name for name in EXTRA_MODULES if _missing(name)]


def require_extra(package: str) -> None:
    """Raises ``ImportError`` naming the missing modules and the install command unless
    the ``experiments`` extra is installed."""
    missing = missing_modules()
    if missing:
        raise ImportError(f"{package} needs the 'experiments' extra, which is not installed (missing: "
                          f"{', '.join(missing)}): {INSTALL}", name=missing[0])
