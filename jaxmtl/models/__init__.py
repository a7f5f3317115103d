"""Models with a shared trunk and one head per task: MultiLeNet (Flax) and Paper A's toy."""
from jaxmtl.models.multilenet import MixedLeNet, MultiLeNet, shared_mask, task_of
from jaxmtl.models.rotograd import Rotations
from jaxmtl.models.toy import apply_toy, init_toy

__all__ = ["MixedLeNet", "MultiLeNet", "Rotations", "apply_toy", "init_toy", "shared_mask", "task_of"]
