"""QM9 (Ramakrishnan et al. 2014): 11 regression targets on molecular graphs (paper C, Nash-MTL).

Read through tfds's ``qm9/dimenet`` config: 110,000 train, 10,000 validation and
10,831 test molecules (shuffled with seed 42, DimeNet's split). tfds gives atoms
(``charges``, ``positions``, ``num_atoms``) but no bonds, so each molecule becomes
a dense graph padded to ``MAX_ATOMS`` (:func:`molecule_graph`): node features
= one-hot of H, C, N, O, F and ``Z / 9``; an edge joins two distinct atoms closer
than ``cutoff`` Angstrom, with the distance expanded in ``NUM_RBF`` Gaussians.

Targets: :data:`TARGETS` (the 11 of paper C and Nash-MTL: PyG's indices 0-6,
12-15, 11; tfds's units), normalised by the training set's mean and std; the
MAE metric multiplies by the std (:func:`jaxmtl.data.tasks.regression_tasks`).
Batches: ``{"graph": {"nodes", "edges", "adjacency", "node_mask"}, "targets":
f32 (B, 11)}``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxmtl.data.checks import check_range, check_shape, data_error
from jaxmtl.data.dense import DenseSplit

TARGETS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0_atomization", "U_atomization",
           "H_atomization", "G_atomization", "Cv")
MAX_ATOMS = 29
ELEMENTS = (1, 6, 7, 8, 9)
NUM_RBF = 16
HOW_TO_GET = (
    "Get QM9 through tfds's 'qm9/dimenet' builder: with internet it downloads the figshare archive\n"
    "(dsgdb9nsd.xyz.tar.bz2, ~90 MB) and prepares it once into data_dir (default ~/tensorflow_datasets);\n"
    "offline, prepare it on a machine with internet and copy data_dir. Needs pandas. See docs/datasets.md."
)


def molecule_graph(charges: np.ndarray, positions: np.ndarray, num_atoms: int,
                   cutoff: float = 5.0) -> dict[str, np.ndarray]:
    """The padded graph of one molecule (``MAX_ATOMS`` nodes; see the module docstring)."""
    n = int(num_atoms)
    if not 0 < n <= MAX_ATOMS:
        raise ValueError(f"num_atoms must be in 1..{MAX_ATOMS}, got {n}")
    charges = np.asarray(charges)[:MAX_ATOMS]
    node_mask = np.arange(MAX_ATOMS) < n
    nodes = np.zeros((MAX_ATOMS, len(ELEMENTS) + 1), np.float32)
    nodes[:, :-1] = charges[:, None] == np.asarray(ELEMENTS)[None]
    nodes[:, -1] = charges / 9.0
    nodes *= node_mask[:, None]
    pos = np.asarray(positions, np.float32)[:MAX_ATOMS]
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    adjacency = (dist < cutoff) & node_mask[:, None] & node_mask[None] & ~np.eye(MAX_ATOMS, dtype=bool)
    centres = np.linspace(0.0, cutoff, NUM_RBF, dtype=np.float32)
    width = cutoff / (NUM_RBF - 1)
    edges = np.exp(-((dist[..., None] - centres) / width) ** 2) * adjacency[..., None]
    return {"nodes": nodes, "edges": edges.astype(np.float32), "adjacency": adjacency, "node_mask": node_mask}


def check_source(where: str, source) -> None:
    """A ``qm9`` source holds records, its first one 1..``MAX_ATOMS`` atoms of :data:`ELEMENTS`
    (0 as padding) at finite positions ``(MAX_ATOMS, 3)``, and finite :data:`TARGETS`."""
    if not len(source):
        raise data_error(where, "QM9 molecules", "none")
    ex = source[0]
    n, charges, positions = int(ex["num_atoms"]), np.asarray(ex["charges"]), np.asarray(ex["positions"])
    if not 0 < n <= MAX_ATOMS:
        raise data_error(where, f"1..{MAX_ATOMS} atoms in its first molecule", f"{n}")
    check_shape(where, positions.shape, [(MAX_ATOMS, 3)], "atom positions")
    check_range(where, positions, -np.inf, np.inf, "atom positions")
    unknown = sorted(set(charges[:n].tolist()) - set(ELEMENTS))
    if unknown:
        raise data_error(where, f"atomic numbers {ELEMENTS}", f"{unknown}")
    check_range(where, raw_targets(ex), -np.inf, np.inf, "targets")


class QM9Examples(Sequence):
    """Records of a tfds ``qm9`` source as ``{"graph": ..., "targets": f32 (11,)}`` (normalised)."""

    def __init__(self, source, mean: np.ndarray, std: np.ndarray, cutoff: float):
        self.source, self.mean, self.std, self.cutoff = source, mean, std, cutoff

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        ex = self.source[i]
        y = raw_targets(ex)
        return {"graph": molecule_graph(ex["charges"], ex["positions"], ex["num_atoms"], self.cutoff),
                "targets": ((y - self.mean) / self.std).astype(np.float32)}


def raw_targets(example) -> np.ndarray:
    """The 11 :data:`TARGETS` of one record, in tfds's units."""
    return np.array([float(example[t]) for t in TARGETS], np.float64)


@dataclass(frozen=True)
class QM9:
    train: DenseSplit
    val: DenseSplit
    test: DenseSplit
    mean: np.ndarray
    std: np.ndarray
    tasks: tuple[str, ...] = TARGETS


def load_qm9(data_dir: str | os.PathLike | None = None, *, cutoff: float = 5.0,
             stats: tuple[np.ndarray, np.ndarray] | None = None) -> QM9:
    """QM9's DimeNet split with normalised targets (see the module docstring).

    ``stats``: ``(mean, std)`` of the 11 targets; by default computed from the
    training split (one pass over it, which checks that every target is finite).
    Raises ``FileNotFoundError`` saying how to get the data, and
    :class:`~jaxmtl.data.checks.DataError` when a split's first molecule is not QM9's
    (:func:`check_source`).
    """
    import tensorflow_datasets as tfds

    try:
        sources = [tfds.data_source("qm9/dimenet", split=s, data_dir=data_dir) for s in ("train", "validation", "test")]
    except Exception as err:  # no files, no internet, no pandas: say how to get the data
        raise FileNotFoundError(f"tfds could not prepare 'qm9/dimenet' (data_dir={data_dir}): {err}\n"
                                f"{HOW_TO_GET}") from None
    for name, source in zip(("train", "validation", "test"), sources):
        check_source(f"tfds qm9/dimenet/{name} (data_dir={data_dir})", source)
    if stats is None:
        y = np.stack([raw_targets(sources[0][i]) for i in range(len(sources[0]))])
        check_range(f"tfds qm9/dimenet/train (data_dir={data_dir})", y, -np.inf, np.inf, "targets")
        stats = (y.mean(axis=0), y.std(axis=0))
    mean, std = (np.asarray(a, np.float64) for a in stats)
    if mean.shape != (len(TARGETS),) or std.shape != (len(TARGETS),) or not np.all(std > 0):
        raise ValueError(f"stats must be two arrays of {len(TARGETS)} values with std > 0")
    splits = [DenseSplit(QM9Examples(s, mean, std, cutoff)) for s in sources]
    return QM9(*splits, mean=mean, std=std)
