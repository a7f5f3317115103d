"""Data sets: Multi-Fashion (embedded default), the Fashion-MNIST reader behind it, corruptions."""
from jaxmtl.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupt_random
from jaxmtl.data.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from jaxmtl.data.idx import read_idx, write_idx
from jaxmtl.data.multi_fashion import MultiFashion, Split, batches, make_multi_fashion, overlay

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "corrupt_random", "MultiFashion", "Split", "batches", "find_fashion_mnist", "load_fashion_mnist",
           "make_multi_fashion", "overlay", "read_idx", "write_idx"]
