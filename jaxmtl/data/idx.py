"""Reading and writing IDX files (the MNIST / Fashion-MNIST format), gzipped or not."""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from jaxmtl.data.checks import data_error

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def _open(path: str | os.PathLike, mode: str):
    return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file into a NumPy array; raises :class:`~jaxmtl.data.checks.DataError`
    naming the file when it is malformed, cut short, or a gzip file that is (a truncated
    download)."""
    try:
        with _open(path, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise data_error(path, "a complete gzip file (download it again)", f"{type(err).__name__}: {err}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise data_error(path, "an IDX file", "no IDX magic number")
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise data_error(path, f"an IDX header of {header} bytes", f"{len(data)} bytes in all")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(data) - header != count * dtype.itemsize:
        raise data_error(path, f"{count * dtype.itemsize} bytes of data (the header's shape {shape})",
                         f"{len(data) - header} bytes")
    return np.frombuffer(data, dtype, count, header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes a uint8/int8 array as an IDX file (gzipped when ``path`` ends in .gz)."""
    array = np.ascontiguousarray(array)
    code = _CODES.get(array.dtype)
    if code is None:
        raise ValueError(f"write_idx supports uint8 and int8, got {array.dtype}")
    with _open(path, "wb") as f:
        f.write(bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())
