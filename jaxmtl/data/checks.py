"""Up-front checks of loaded data: a malformed file fails before any training, naming itself.

Every loader of :mod:`jaxmtl.data` checks what it reads (shapes, dtypes, value
ranges, matching file counts) with these helpers and raises :class:`DataError`
saying which file, what was expected and what was found, e.g. ::

    DataError: <root>/train/label_7/3.npy: expected class ids 0..6 or -1 (ignored), found 7 other values (100..106)
"""
from __future__ import annotations

import os

import numpy as np


class DataError(ValueError):
    """A data file that cannot be what its loader reads: cut short, of the wrong shape or dtype,
    or holding values out of range. The message names the file, the expectation and the finding."""


def data_error(where: str | os.PathLike, expected: str, found: str) -> DataError:
    return DataError(f"{where}: expected {expected}, found {found}")


def _span(values: np.ndarray) -> str:
    """Out-of-range values in a message: their count and range."""
    values = np.unique(values)
    if len(values) == 1:
        return f"the value {values[0]:g}"
    return f"{len(values)} other values ({values.min():g}..{values.max():g})"


def check_class_ids(where: str | os.PathLike, labels: np.ndarray, classes: int, ignore: int | None = None) -> None:
    """``labels`` are integer class ids in ``0 .. classes - 1`` (or ``ignore``, the unlabelled value)."""
    a = np.asarray(labels)
    expected = f"class ids 0..{classes - 1}" + (f" or {ignore} (ignored)" if ignore is not None else "")
    if a.dtype.kind not in "iuf":
        raise data_error(where, expected, f"dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(a == np.rint(a)):
        raise data_error(where, expected, "values that are not whole numbers")
    valid = (a >= 0) & (a < classes)
    if ignore is not None:
        valid |= a == ignore
    if not valid.all():
        raise data_error(where, expected, _span(a[~valid]))


def check_range(where: str | os.PathLike, array: np.ndarray, low: float, high: float, what: str) -> None:
    """``array``'s values are finite and within ``[low, high]``."""
    a = np.asarray(array)
    if a.dtype.kind not in "iuf":
        raise data_error(where, f"{what} (numbers)", f"dtype {a.dtype}")
    bad = ~np.isfinite(a) | (a < low) | (a > high)
    if bad.any():
        raise data_error(where, f"{what} in [{low:g}, {high:g}]", _span(a[bad]))


def check_shape(where: str | os.PathLike, shape: tuple[int, ...], allowed: list[tuple[int, ...]], what: str) -> None:
    """``shape`` is one of ``allowed``."""
    if tuple(shape) not in [tuple(s) for s in allowed]:
        raise data_error(where, f"{what} of shape {' or '.join(str(tuple(s)) for s in allowed)}", f"shape {tuple(shape)}")


def missing_list(names: list[str], where: str | os.PathLike) -> str:
    """The missing ``names`` of a data set found in part at ``where``, as a message."""
    return f"{where} lacks {', '.join(names)} (the data set's other files are there)"
