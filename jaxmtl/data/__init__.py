"""Data sets: Multi-Fashion (embedded default), Multi-MNIST, the Fashion-MNIST reader behind them,
corruptions; the papers' benchmarks (Cityscapes, NYUv2, CelebA, QM9), their tasks, and a
prefetching batch iterator."""
from jaxmtl._extras import require_extra

require_extra(__name__)

from jaxmtl.data.celeba import ATTRIBUTES, load_celeba
from jaxmtl.data.cityscapes import load_cityscapes
from jaxmtl.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random
from jaxmtl.data.dense import DenseDataset, DenseSplit, dense_batches, random_scale_crop
from jaxmtl.data.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from jaxmtl.data.idx import read_idx, write_idx
from jaxmtl.data.multi_fashion import MultiFashion, Split, batches, make_multi_fashion, overlay
from jaxmtl.data.multi_mnist import MultiMNIST, PairSplit, make_multi_mnist, pair_batches
from jaxmtl.data.nyuv2 import load_nyuv2
from jaxmtl.data.prefetching import prefetch
from jaxmtl.data.qm9 import QM9, TARGETS, load_qm9, molecule_graph
from jaxmtl.data.tasks import (Task, attribute_tasks, classification_tasks, depth_task, instance_task,
                               normals_task, reconstruction_task, regression_tasks, segmentation_task)

__all__ = ["ATTRIBUTES", "CORRUPTIONS", "DenseDataset", "DenseSplit", "MultiFashion", "MultiMNIST",
           "PairSplit", "QM9", "SEVERITIES", "Split", "TARGETS", "Task", "attribute_tasks", "batches",
           "classification_tasks", "corrupt", "corrupt_random", "dense_batches", "depth_task",
           "find_fashion_mnist", "instance_task", "load_celeba", "load_cityscapes", "load_fashion_mnist", "load_nyuv2",
           "load_qm9", "make_multi_fashion", "make_multi_mnist", "molecule_graph", "normals_task", "overlay",
           "pair_batches", "prefetch", "random_scale_crop", "read_idx", "reconstruction_task", "regression_tasks",
           "segmentation_task", "write_idx"]
