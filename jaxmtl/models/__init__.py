"""Models with a shared trunk (``params["encoder"]``) and one head per task (``params["head_<t>"]``):
MultiLeNet/MixedLeNet, SegNet, DeepLabV3+, the CelebA ResNet and the QM9 MPNN (Flax), and
Paper A's toy. :func:`shared_mask` and :func:`task_of` fit all of them; the benchmark models'
``encode``/``decode`` methods split them at the shared representation."""
from jaxmtl._extras import require_extra

require_extra(__name__)

from jaxmtl.models.deeplab import DeepLabV3Plus
from jaxmtl.models.mpnn import MPNN
from jaxmtl.models.multilenet import MixedLeNet, MultiLeNet, shared_mask, task_of
from jaxmtl.models.resnet import ResNet, ResNetHeads
from jaxmtl.models.rotograd import Rotations
from jaxmtl.models.segnet import SegNet
from jaxmtl.models.toy import apply_toy, init_toy

__all__ = ["DeepLabV3Plus", "MPNN", "MixedLeNet", "MultiLeNet", "ResNet", "ResNetHeads", "Rotations",
           "SegNet", "apply_toy", "init_toy", "shared_mask", "task_of"]
