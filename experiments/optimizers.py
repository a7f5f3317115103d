"""The optimiser axis of the experiments: a training chain from an optimiser's name.

:func:`make_optimizer` builds, for a method and a name in :data:`OPTIMIZERS`
(``adam``, ``sgd_momentum``, ``signsgd_momentum``, ``adatask``, ``mtl_io`` and
its SGD and signSGD variants), the whole optax chain of a study's run, with
optional weight decay. The pieces (:func:`jaxmtl.optim.signum`,
:func:`jaxmtl.optim.adatask`, :func:`jaxmtl.optim.mtl_io`) are in the library.
"""
from __future__ import annotations

from typing import Any, Callable

import optax

from jaxmtl.masking import Mask
from jaxmtl.optim import adatask, mtl_io, signum
from jaxmtl.partition import partition

MTL_IO = {"mtl_io": "adam", "mtl_io_sgd_momentum": "sgd_momentum",
          "mtl_io_signsgd_momentum": "signsgd_momentum"}
"""MTL-IO optimiser names and the optimiser each task gets."""
OPTIMIZERS = ("adam", "sgd_momentum", "signsgd_momentum", "adatask", *MTL_IO)


def make_optimizer(name: str, learning_rate: float, method: optax.GradientTransformation, *,
                   num_tasks: int, shared: Mask = None, task_of: Any = None,
                   eps: float = 1e-8, weight_decay: float = 0.0) -> optax.GradientTransformationExtraArgs:
    """The full training transformation for ``method`` and the optimiser ``name``.

    ``adam``, ``sgd_momentum`` (momentum 0.9) and ``signsgd_momentum`` (0.9) act on the
    aggregated update; ``adatask`` (per-task Adam moments) and ``mtl_io`` (one Adam
    per task), ``mtl_io_sgd_momentum`` and ``mtl_io_signsgd_momentum`` (one such
    optimiser per task) act per task before the method. ``shared`` restricts the
    method to the shared parameters and ``task_of`` scales the task-specific ones by
    the method's weights (see :func:`jaxmtl.partition`); ``eps`` is Adam's.

    ``weight_decay``: coupled L2 (``g + wd * params``, PyTorch's ``weight_decay``,
    LibMTL's setting) added to the aggregated update before a shared optimiser; for
    the per-task optimisers, where no aggregated gradient exists before the
    optimiser, decoupled decay ``-lr * wd * params`` is added to the update.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    shared_opt: dict[str, Callable[[float], Any]] = {
        "adam": lambda lr: optax.adam(lr, eps=eps),
        "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
        "signsgd_momentum": signum,
    }
    decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    if name in shared_opt:
        core = method if shared is None else partition(method, shared, task_of=task_of)
        return optax.chain(core, *decay, shared_opt[name](learning_rate))
    decoupled = [optax.add_decayed_weights(-learning_rate * weight_decay)] if weight_decay else []
    if name == "adatask":
        tx = adatask(learning_rate, num_tasks, method=method, shared=shared, task_of=task_of, eps=eps)
        return optax.chain(tx, *decoupled)
    if name in MTL_IO:
        tx = mtl_io(shared_opt[MTL_IO[name]], learning_rate, num_tasks, method=method, shared=shared, task_of=task_of)
        return optax.chain(tx, *decoupled)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
