"""Data sets: Multi-Fashion (embedded default) and the Fashion-MNIST reader behind it."""
from jaxmtl.data.fashion_mnist import find_fashion_mnist, load_fashion_mnist
from jaxmtl.data.idx import read_idx, write_idx
from jaxmtl.data.multi_fashion import MultiFashion, Split, batches, make_multi_fashion, overlay

__all__ = ["MultiFashion", "Split", "batches", "find_fashion_mnist", "load_fashion_mnist",
           "make_multi_fashion", "overlay", "read_idx", "write_idx"]
