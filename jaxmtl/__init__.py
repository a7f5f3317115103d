"""jaxmtl: multi-task learning methods as optax transformations.

    losses, task_grads = jaxmtl.value_and_jacobian(loss_fn)(params, batch)
    tx = optax.chain(jaxmtl.upgrad(), optax.adam(1e-3))
    updates, state = tx.update(task_grads, state, params, losses=losses)
"""
from jaxmtl.aggregators import *  # noqa: F401,F403  (one factory and weighting per method)
from jaxmtl.aggregators import __all__ as _aggregators
from jaxmtl.gramian import combine, cross_gramian, gramian, num_tasks, scaled_gramian
from jaxmtl.gramian_path import weighted_value_and_grad
from jaxmtl.jacobian import jacobian, representation_gramian, value_and_jacobian
from jaxmtl.masking import path_mask, resolve_mask
from jaxmtl.method import MethodState, weighted_method
from jaxmtl.optim import adatask, make_optimizer, mtl_io, per_task, signum
from jaxmtl.partition import partition
from jaxmtl.weighting import *  # noqa: F401,F403  (one factory per loss weighting)
from jaxmtl.weighting import __all__ as _weightings

__version__ = "0.1.0"

__all__ = [
    *_aggregators, *_weightings, "MethodState", "combine", "cross_gramian", "adatask", "gramian", "jacobian", "make_optimizer", "mtl_io", "per_task", "signum",
    "num_tasks", "partition", "path_mask", "representation_gramian", "resolve_mask",
    "scaled_gramian", "value_and_jacobian", "weighted_method", "weighted_value_and_grad",
]
