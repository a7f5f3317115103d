"""Training utilities: jitted steps, metrics, crash-safe results."""
from jaxmtl._extras import require_extra

require_extra(__name__)

from jaxmtl.training.metrics import delta_m
from jaxmtl.training.results import ResultStore, atomic_write
from jaxmtl.training.steps import (classification_losses, evaluate, evaluate_tasks, make_eval_step,
                                   make_task_eval_step, make_task_train_step, make_train_step, task_losses)

__all__ = ["ResultStore", "atomic_write", "classification_losses", "delta_m", "evaluate",
           "evaluate_tasks", "make_eval_step", "make_task_eval_step", "make_task_train_step", "make_train_step",
           "task_losses"]
