"""What a data set's tasks are: a :class:`Task` names its target in the batch, its loss and metrics.

The generic steps (:func:`jaxmtl.training.make_task_train_step`) take a tuple of
tasks and a model whose output is a tuple (or stacked array) with one
prediction per task, in the same order, or a dict keyed by task name. Task
``t``'s loss is ``task.loss(pred_t, target_t, mask_t)`` where ``target_t`` is
``batch[task.target]`` (column ``task.column`` of it when set: one array holding
several tasks' labels, as Multi-Fashion's ``labels (B, 2)`` or CelebA's
``attributes (B, 40)``) and ``mask_t`` is ``batch[task.mask]`` (same column rule)
or ``None``: every example labelled. A masked-out example is left out of the
loss (the mean runs over labelled examples only), and a batch in which a task
has no labelled example gives that task a loss of 0 with zero, finite gradients.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from jaxmtl import metrics as M


@dataclass(frozen=True)
class Task:
    """One task: ``name``, ``loss(pred, target, mask) -> f32[]``, its ``metrics``."""

    name: str
    loss: Callable[[Any, Any, Any], Any]
    metrics: tuple[M.Metric, ...]
    target: str
    column: int | None = None
    mask: str | None = None

    def labels(self, batch: dict) -> tuple[Any, Any]:
        """``(target, mask)`` of this task in ``batch`` (``mask`` ``None`` when all are labelled)."""
        if self.target not in batch:
            raise ValueError(f"task {self.name!r} reads batch[{self.target!r}], but the batch has "
                             f"{sorted(batch)}")
        target = batch[self.target]
        mask = batch[self.mask] if self.mask is not None and self.mask in batch else None
        if self.column is not None:
            target = target[:, self.column]
            mask = None if mask is None else mask[:, self.column]
        return target, mask

    @property
    def higher_is_better(self) -> dict[str, bool]:
        """Direction of each metric, by name (for :func:`jaxmtl.training.delta_m`)."""
        return {m.name: m.higher_is_better for m in self.metrics}


def select(outputs: Any, tasks: Sequence[Task]) -> list[Any]:
    """The prediction of each task: ``outputs[name]`` for a dict, ``outputs[t]`` otherwise."""
    if isinstance(outputs, dict):
        missing = [t.name for t in tasks if t.name not in outputs]
        if missing:
            raise ValueError(f"model outputs {sorted(outputs)} lack tasks {missing}")
        return [outputs[t.name] for t in tasks]
    if len(outputs) != len(tasks):
        raise ValueError(f"model returns {len(outputs)} outputs for {len(tasks)} tasks")
    return [outputs[i] for i in range(len(tasks))]


def higher_is_better(tasks: Sequence[Task]) -> dict[str, bool]:
    """Direction of every metric of ``tasks``; raises ``ValueError`` if two disagree on a name."""
    out: dict[str, bool] = {}
    for task in tasks:
        for name, hib in task.higher_is_better.items():
            if out.setdefault(name, hib) != hib:
                raise ValueError(f"metric {name!r} is higher-is-better in one task, not in another")
    return out


def classification_tasks(names: Sequence[str], target: str = "labels", mask: str | None = None) -> tuple[Task, ...]:
    """One softmax classification task per column of ``batch[target]`` (Multi-Fashion, Multi-MNIST)."""
    return tuple(Task(n, M.cross_entropy, (M.accuracy(),), target, i, mask) for i, n in enumerate(names))


def reconstruction_task(name: str, column: int, target: str = "items") -> Task:
    """Reconstruct image ``column`` of ``batch[target]`` (``(B, K, H, W)``): per-pixel squared error
    as the loss and the metric (Multi-MNIST's RL/RR, paper C)."""
    return Task(name, M.squared_error, (M.reconstruction_error(),), target, column)


def attribute_tasks(names: Sequence[str], target: str = "attributes",
                    mask: str | None = "attributes_mask") -> tuple[Task, ...]:
    """One binary task per column of ``batch[target]`` (CelebA's 40 attributes); a
    ``batch[mask]`` of the same shape, when present, marks the labelled entries."""
    return tuple(Task(n, M.binary_cross_entropy, (M.binary_accuracy(),), target, i, mask)
                 for i, n in enumerate(names))


def regression_tasks(names: Sequence[str], stds: Sequence[float], target: str = "targets",
                     mask: str | None = "targets_mask") -> tuple[Task, ...]:
    """One squared-error task per column of ``batch[target]`` (normalised), MAE
    de-normalised by the column's ``std`` (QM9)."""
    if len(stds) != len(names):
        raise ValueError(f"{len(names)} targets but {len(stds)} stds")
    return tuple(Task(n, M.squared_error, (M.mae(float(s)),), target, i, mask)
                 for i, (n, s) in enumerate(zip(names, stds)))


def segmentation_task(name: str = "segmentation", target: str = "segmentation") -> Task:
    """Pixel cross-entropy (ignore index -1), mIoU and pixel accuracy."""
    return Task(name, M.pixel_cross_entropy, (M.mean_iou(), M.pixel_accuracy()), target, mask=f"{target}_mask")


def depth_task(name: str = "depth", target: str = "depth") -> Task:
    """L1 on valid (positive) pixels; absolute and relative error."""
    return Task(name, M.l1_depth_loss, (M.abs_error(), M.rel_error()), target, mask=f"{target}_mask")


def instance_task(name: str = "instance", target: str = "instance") -> Task:
    """Instance offsets (Kendall et al. 2018): L1 over instance pixels (``batch[target + "_mask"]``);
    mean L1 offset error in pixels."""
    return Task(name, M.l1_offset_loss, (M.offset_error(),), target, mask=f"{target}_mask")


def normals_task(name: str = "normals", target: str = "normals") -> Task:
    """``1 - cos``; mean and median angle, fractions within 11.25/22.5/30 degrees."""
    return Task(name, M.normal_loss, (M.mean_angle(), M.median_angle(), *map(M.within, M.THRESHOLDS)),
                target, mask=f"{target}_mask")
