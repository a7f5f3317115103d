"""Flax models: a shared trunk with one head per task."""
from jaxmtl.models.multilenet import MultiLeNet, shared_mask, task_of

__all__ = ["MultiLeNet", "shared_mask", "task_of"]
