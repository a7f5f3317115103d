"""jaxmtl: multi-task learning methods as optax transformations.

    losses, task_grads = jaxmtl.value_and_jacobian(loss_fn)(params, batch)
    tx = optax.chain(jaxmtl.upgrad(), optax.adam(1e-3))
    updates, state = tx.update(task_grads, state, params, losses=losses)
"""
from jaxmtl.aggregators import mgda, mgda_weights, pcgrad, pcgrad_weights, upgrad, upgrad_weights
from jaxmtl.gramian import combine, gramian, num_tasks, scaled_gramian
from jaxmtl.jacobian import jacobian, value_and_jacobian
from jaxmtl.masking import path_mask, resolve_mask
from jaxmtl.method import MethodState, weighted_method
from jaxmtl.partition import partition
from jaxmtl.weighting import linear

__version__ = "0.1.0"

__all__ = [
    "MethodState", "combine", "gramian", "jacobian", "linear", "mgda", "mgda_weights",
    "num_tasks", "partition", "path_mask", "pcgrad", "pcgrad_weights", "resolve_mask",
    "scaled_gramian", "upgrad", "upgrad_weights", "value_and_jacobian", "weighted_method",
]
