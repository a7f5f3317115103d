"""Data sets: Multi-Fashion (embedded default), the Fashion-MNIST reader behind it, corruptions."""
from jaxmtl.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random
from jaxmtl.data.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from jaxmtl.data.idx import read_idx, write_idx
from jaxmtl.data.multi_fashion import MultiFashion, Split, batches, make_multi_fashion, overlay
from jaxmtl.data.multi_mnist import MultiMNIST, PairSplit, make_multi_mnist, pair_batches

__all__ = ["CORRUPTIONS", "SEVERITIES", "MultiFashion", "MultiMNIST", "PairSplit", "Split", "batches", "corrupt",
           "corrupt_random", "find_fashion_mnist", "load_fashion_mnist", "make_multi_fashion",
           "make_multi_mnist", "overlay", "pair_batches", "read_idx", "write_idx"]
