"""Which leaves of a parameter pytree are shared between tasks.

A *shared mask* can be given in three forms, resolved against a pytree by
:func:`resolve_mask`:

* ``None``: every leaf is shared;
* a pytree of bools with the structure of the parameters, or a *prefix* of it
  (``{"encoder": True, "head_0": False}`` marks whole sub-trees);
* a callable ``params -> bool pytree`` (the ``optax.masked`` convention).

:func:`path_mask` builds a mask from a predicate on each leaf's key path, e.g.
``path_mask(lambda path: "encoder" in path)``.
"""
from __future__ import annotations

from typing import Any, Callable

import jax

Mask = Any  # None | bool pytree (or prefix) | Callable[[pytree], bool pytree]


def resolve_mask(mask: Mask, tree: Any) -> Any:
    """Returns a bool pytree with the structure of ``tree``."""
    if mask is None:
        return jax.tree.map(lambda _: True, tree)
    if callable(mask):
        mask = mask(tree)
    try:
        return jax.tree.map(lambda m, sub: jax.tree.map(lambda _: bool(m), sub), mask, tree)
    except (ValueError, TypeError) as err:
        raise ValueError(
            "shared mask does not match the parameter tree: it must be a bool pytree with "
            f"the parameters' structure or a prefix of it ({err})"
        ) from None


def path_mask(predicate: Callable[[str], bool]) -> Callable[[Any], Any]:
    """A mask callable from a predicate on the '/'-joined key path of each leaf.

    Examples:
      >>> import jax.numpy as jnp, jaxmtl
      >>> shared = jaxmtl.path_mask(lambda path: path.startswith("encoder/"))
      >>> shared({"encoder": {"w": jnp.ones(3)}, "heads": [jnp.ones(2), jnp.ones(2)]})
      {'encoder': {'w': True}, 'heads': [False, False]}
    """

    def mask(tree: Any) -> Any:
        def leaf(path, _):
            return bool(predicate("/".join(_key_name(k) for k in path)))

        return jax.tree_util.tree_map_with_path(leaf, tree)

    return mask


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)
