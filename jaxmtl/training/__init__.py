"""Training utilities: jitted steps, metrics, crash-safe results."""
from jaxmtl.training.metrics import delta_m
from jaxmtl.training.results import ResultStore, atomic_write
from jaxmtl.training.steps import classification_losses, evaluate, make_eval_step, make_train_step

__all__ = ["ResultStore", "atomic_write", "classification_losses", "delta_m", "evaluate",
           "make_eval_step", "make_train_step"]
