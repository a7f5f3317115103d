"""Paper A's training settings on its own benchmarks, per preset, for the studies A3 and A4.

Paper A (Elich et al., Sec. 4 and App. A) trains on Cityscapes (7-class
segmentation + depth, 128x256) with batch 64 for 300 epochs and on NYUv2
(13-class segmentation + depth + normals, 288x384) with batch 8 for 200 epochs,
the learning rate halved twice (``step``: after 1/3 and 2/3 of the epochs, the
paper's 100 and 200 of 300); weight decay 1e-5 (:data:`~experiments.paper_a.tuning.WEIGHT_DECAY`).
On CelebA (*ours*: its A3 protocol is not given) batch 256 as Sener & Koltun
(2018), 30 epochs, constant learning rate. ``quick`` is a GPU smoke run of the
same protocol (a few hundred images, a few epochs); ``tiny`` the size of the
tests' fake files (:mod:`tests.fake_datasets`).

:func:`preset` lays a data set's settings over a study's own preset (Multi-Fashion,
Multi-MNIST and QM9 have none: the study's presets, sized for Multi-Fashion, apply), as paper C's
:attr:`~experiments.datasets.Benchmark.protocols` do.
"""
from __future__ import annotations

_DENSE_TINY = dict(data=dict(n_train=8, n_val=4, n_test=4, val_fraction=0.5), epochs=1, batch_size=2)
PROTOCOLS: dict[str, dict[str, dict]] = {
    "cityscapes": {
        "tiny": _DENSE_TINY,
        "quick": dict(data=dict(n_train=512, n_val=128, n_test=128), epochs=6, batch_size=16),
        "paper": dict(data=dict(), epochs=300, batch_size=64, lr_schedule="step"),
    },
    "nyuv2": {
        "tiny": _DENSE_TINY,
        "quick": dict(data=dict(n_train=256, n_val=64, n_test=128), epochs=6, batch_size=8),
        "paper": dict(data=dict(), epochs=200, batch_size=8, lr_schedule="step"),
    },
    "celeba": {
        "tiny": dict(data=dict(n_train=32, n_val=32, n_test=32), epochs=1, batch_size=8),
        "quick": dict(data=dict(n_train=8192, n_val=1024, n_test=1024), epochs=4, batch_size=128),
        "paper": dict(data=dict(), epochs=30, batch_size=256),
    },
}


def preset(presets: dict[str, dict], name: str, dataset: str) -> dict:
    """Study preset ``name`` with data set ``dataset``'s settings of :data:`PROTOCOLS` over it."""
    return {"lr_schedule": "constant", **presets[name], **PROTOCOLS.get(dataset, {}).get(name, {})}
