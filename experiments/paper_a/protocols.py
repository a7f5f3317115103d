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

:func:`preset` lays a data set's settings (its entry's
:attr:`~experiments.datasets.Benchmark.protocols` under ``"paper_a"``, as paper C's are under
``"paper_c"``) over a study's own preset; Multi-Fashion, Multi-MNIST and QM9 have none: the
study's presets, sized for Multi-Fashion, apply.
"""
from __future__ import annotations

from experiments.datasets import DATASETS

STUDY = "paper_a"
"""The key of these settings in a benchmark's :attr:`~experiments.datasets.Benchmark.protocols`."""


def preset(presets: dict[str, dict], name: str, dataset: str) -> dict:
    """Study preset ``name`` with data set ``dataset``'s paper A settings over it (a constant
    learning rate unless they say otherwise)."""
    return {"lr_schedule": "constant", **presets[name], **DATASETS[dataset].protocols.get(STUDY, {}).get(name, {})}
