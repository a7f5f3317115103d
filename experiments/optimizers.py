"""The optimiser axis of the experiments: a training chain from an optimiser's name.

:func:`make_optimizer` builds, for a method and a name in :data:`OPTIMIZERS`
(``adam``, ``sgd_momentum``, ``signsgd_momentum``, ``adatask``, ``mtl_io`` and
its SGD and signSGD variants), the whole optax chain of a study's run, with
optional weight decay and learning-rate schedule (:data:`LR_SCHEDULES`:
``constant``; ``step``, Paper A's Cityscapes schedule scaled to the run:
the learning rate halved after 1/3 and 2/3 of the epochs, as after epochs 100
and 200 of 300; ``exp_decay``, paper C's: times 0.95 after every epoch; ``plateau``,
paper C's on QM9: times 0.7 after 5 epochs without a lower training loss, down to 1e-5).
:func:`base_optimizer` is the optimiser alone, for parameters that the model's
own optimiser trains besides the network (LibMTL's uncertainty weights). The pieces (:func:`jaxmtl.optim.signum`,
:func:`jaxmtl.optim.adatask`, :func:`jaxmtl.optim.mtl_io`) are in the library.
"""
from __future__ import annotations

from typing import Any, Callable

import optax

from jaxmtl.masking import Mask
from jaxmtl.optim import adatask, mtl_io, signum
from jaxmtl.partitioning import partition

MTL_IO = {"mtl_io": "adam", "mtl_io_sgd_momentum": "sgd_momentum",
          "mtl_io_signsgd_momentum": "signsgd_momentum"}
"""MTL-IO optimiser names and the optimiser each task gets."""
OPTIMIZERS = ("adam", "sgd_momentum", "signsgd_momentum", "adatask", *MTL_IO)
LR_SCHEDULES = ("constant", "step", "exp_decay", "plateau")
EXP_DECAY = 0.95
"""Paper C's learning-rate decay per epoch (``exp_decay``)."""


def lr_factor(schedule: str, epochs: int, steps_per_epoch: int,
              lr: float = 1.0) -> optax.Schedule | optax.GradientTransformationExtraArgs | None:
    """The learning-rate multiplier of ``schedule`` per step (``None`` for ``constant``).

    ``step``: Paper A halves the learning rate every 100 epochs of its 300 on
    Cityscapes; scaled to ``epochs``, the factor drops to 1/2 after epoch
    ``round(epochs / 3)`` and to 1/4 after ``round(2 epochs / 3)`` (a boundary at
    epoch 0 or at the end is dropped: runs of 1 or 2 epochs halve at most once).
    ``exp_decay``: paper C multiplies the learning rate by :data:`EXP_DECAY` after every
    epoch (``0.95 ** epoch``, constant within an epoch). ``plateau``: paper C's QM9
    ``ReduceLROnPlateau(factor=0.7, patience=5, min_lr=1e-5)`` as a transformation
    (``optax.contrib.reduce_on_plateau``) on the training loss averaged over each epoch
    (the train step passes ``value=``, the summed task losses; paper C steps it with the
    last batch's); ``lr`` sets its floor.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {LR_SCHEDULES}")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs and steps_per_epoch must be >= 1, got {epochs} and {steps_per_epoch}")
    if schedule == "constant":
        return None
    if schedule == "exp_decay":
        return optax.exponential_decay(1.0, steps_per_epoch, EXP_DECAY, staircase=True)
    if schedule == "plateau":
        return optax.contrib.reduce_on_plateau(factor=0.7, patience=5, accumulation_size=steps_per_epoch,
                                               min_scale=min(1.0, 1e-5 / lr))
    bounds = sorted({round(k * epochs / 3) for k in (1, 2)} - {0, epochs})
    return optax.piecewise_constant_schedule(1.0, {b * steps_per_epoch: 0.5 for b in bounds})


def _shared_optimizers(eps: float) -> dict[str, Callable[[Any], optax.GradientTransformation]]:
    return {"adam": lambda lr: optax.adam(lr, eps=eps),
            "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
            "signsgd_momentum": signum}


def _scaled(tx: optax.GradientTransformation, factor) -> optax.GradientTransformation:
    """``tx`` times ``factor``: a per-step schedule, or a transformation that scales the update."""
    if factor is None:
        return tx
    if isinstance(factor, optax.GradientTransformation):
        return optax.chain(tx, factor)
    return optax.chain(tx, optax.scale_by_schedule(factor))


def base_optimizer(name: str, learning_rate: float, *, eps: float = 1e-8,
                   factor: optax.Schedule | None = None) -> optax.GradientTransformation:
    """The plain optimiser behind ``name`` (``adatask`` -> Adam, ``mtl_io_X`` -> X), with
    the learning-rate multiplier ``factor`` (:func:`lr_factor`): what LibMTL's single
    optimiser applies to parameters outside the network, such as UW's log-variances."""
    family = "adam" if name == "adatask" else MTL_IO.get(name, name)
    opts = _shared_optimizers(eps)
    if family not in opts:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    return _scaled(opts[family](learning_rate), factor)


def make_optimizer(name: str, learning_rate: float, method: optax.GradientTransformation, *,
                   num_tasks: int, shared: Mask = None, task_of: Any = None,
                   eps: float = 1e-8, weight_decay: float = 0.0,
                   factor: optax.Schedule | None = None) -> optax.GradientTransformationExtraArgs:
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

    ``factor``: a per-step learning-rate multiplier (:func:`lr_factor`) applied to
    the final update, which all these optimisers scale linearly with the learning
    rate (momentum and moments are kept, as PyTorch's ``StepLR`` does).
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    shared_opt = _shared_optimizers(eps)
    decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    if name in shared_opt:
        core = method if shared is None else partition(method, shared, task_of=task_of)
        return _scaled(optax.chain(core, *decay, shared_opt[name](learning_rate)), factor)
    decoupled = [optax.add_decayed_weights(-learning_rate * weight_decay)] if weight_decay else []
    if name == "adatask":
        tx = adatask(learning_rate, num_tasks, method=method, shared=shared, task_of=task_of, eps=eps)
        return _scaled(optax.chain(tx, *decoupled), factor)
    if name in MTL_IO:
        tx = mtl_io(shared_opt[MTL_IO[name]], learning_rate, num_tasks, method=method, shared=shared, task_of=task_of)
        return _scaled(optax.chain(tx, *decoupled), factor)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
