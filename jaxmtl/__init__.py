"""jaxmtl: multi-task learning methods as optax transformations.

    losses, task_grads = jaxmtl.value_and_jacobian(loss_fn)(params, batch)
    tx = optax.chain(jaxmtl.upgrad(), optax.adam(1e-3))
    updates, state = tx.update(task_grads, state, params, losses=losses)

Two conflicting task gradients (rows), UPGrad, then SGD: the step ``-updates``
conflicts with neither task (``J d >= 0``)::

    >>> import jax.numpy as jnp, optax, jaxmtl
    >>> task_grads = {"w": jnp.array([[1.0, 0.0], [-1.0, 1.0]])}
    >>> tx = optax.chain(jaxmtl.upgrad(), optax.sgd(1.0))
    >>> updates, state = tx.update(task_grads, tx.init({"w": jnp.zeros(2)}))
    >>> [round(u, 3) for u in updates["w"].tolist()]
    [-0.25, -0.75]
    >>> bool(jnp.all(task_grads["w"] @ -updates["w"] >= 0))
    True

The core (this namespace) needs jax, optax, chex and numpy only; data sets,
models, training loops and analysis of the studies live in the sub-packages
``jaxmtl.data``, ``jaxmtl.models``, ``jaxmtl.training``, ``jaxmtl.metrics``
(the ``experiments`` extra) and ``jaxmtl.analysis``.

Where the names come from:

* the methods (``jaxmtl.upgrad``, ``jaxmtl.upgrad_weights``, ``jaxmtl.PCGradState``,
  ``jaxmtl.make_rotograd_step``, ...): each module in
  ``jaxmtl.weighting.METHOD_MODULES`` and ``jaxmtl.aggregators.METHOD_MODULES``
  lists them in its ``__all__``; the loop below copies them here. Importing a method
  module also registers its entries in :mod:`jaxmtl.registry`, so adding a method
  is writing its module (see ``jaxmtl/aggregators/__init__.py``);
* everything else: the explicit imports below (Jacobians and Gramians, the method
  protocol, composition wrappers, optimisers, sharding helpers).
"""
from jaxmtl import registry, sharding
from jaxmtl import weighting  # before aggregators: the registry lists ew and mean first
from jaxmtl import aggregators
from jaxmtl.gramian_path import weighted_value_and_grad
from jaxmtl.gramians import (CosineForm, ScaledGramian, combine, cosine_form, cross_gramian, gramian,
                             num_tasks, scaled_gramian)
from jaxmtl.heads_jacobian import value_and_jacobian_by_heads
from jaxmtl.jacobians import jacobian, representation_gramian, value_and_jacobian
from jaxmtl.layerwise import Dense, layerwise_value_and_gramian, layerwise_weighted_value_and_grad
from jaxmtl.masking import path_mask, resolve_mask
from jaxmtl.optim import adatask, mtl_io, per_task, signum
from jaxmtl.partitioning import PartitionState, partition
from jaxmtl.protocol import (WeightsState, find_method_state, method, method_state, recorded_weights,
                             weighted_method)
from jaxmtl.wrappers import MultiStepsState, SkipNonfiniteState, multi_steps, skip_nonfinite

__version__ = "0.2.0"

_METHOD_NAMES: list[str] = []
for _module in (*weighting.METHOD_MODULES, *aggregators.METHOD_MODULES):
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        _METHOD_NAMES.append(_name)
del _module, _name

__all__ = [
    # the methods: factories, Gramian weightings, states, pieces and train steps (see above)
    *_METHOD_NAMES,
    # Jacobians and Gramians
    "CosineForm", "ScaledGramian", "combine", "cosine_form", "cross_gramian", "gramian", "jacobian",
    "num_tasks", "representation_gramian", "scaled_gramian", "value_and_jacobian",
    "value_and_jacobian_by_heads",
    "weighted_value_and_grad", "Dense", "layerwise_value_and_gramian", "layerwise_weighted_value_and_grad",
    # composition
    "MultiStepsState", "PartitionState", "SkipNonfiniteState", "multi_steps", "partition", "path_mask",
    "resolve_mask", "skip_nonfinite",
    # optimisers as an experimental axis
    "adatask", "mtl_io", "per_task", "signum",
    # writing methods
    "WeightsState", "find_method_state", "method", "method_state", "recorded_weights", "registry", "sharding",
    "weighted_method",
]
