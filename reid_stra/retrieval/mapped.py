"""Reading large memory-mapped arrays (feature files bigger than memory) in bounded memory.

Pages read through a memory mapping stay resident in the reading process until the kernel needs
the memory back, so one pass over a 5 GB gallery through ``np.load(..., mmap_mode="r")`` leaves
the process holding 5 GB. Reading the same rows from the file instead holds one block.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

import numpy as np

BLOCK_ROWS = 65_536


def row_blocks(
    array: np.ndarray, rows: int = BLOCK_ROWS, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, block)`` over rows ``start:stop`` of ``array`` (default: all) in blocks of
    ``rows``, each a contiguous copy.

    A whole memory-mapped feature file (as :func:`load_features` returns it) is read block by
    block from the file instead of through the mapping: pages read through a mapping stay
    resident in the process until the kernel needs them, so one pass over a 5 GB gallery would
    leave the process at 5 GB resident; read this way, it holds one block.
    """
    source = _mapped_file(array)
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    stop = array.shape[0] if stop is None else min(stop, array.shape[0])
    for first in range(start, stop, rows):
        count = min(rows, stop - first)
        if source is None:
            yield first, np.ascontiguousarray(array[first : first + count])
        else:
            flat = np.fromfile(source[0], dtype=array.dtype, count=count * row_bytes // array.dtype.itemsize,
                               offset=source[1] + first * row_bytes)  # fmt: skip
            yield first, flat.reshape(count, *array.shape[1:])


def gather_rows(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``array[indices]`` as a contiguous copy; from a whole memory-mapped file, read row by row
    from the file (see :func:`row_blocks`: a scattered sample read through the mapping would fault
    in, and keep, the pages around every row, most of the file)."""
    source = _mapped_file(array)
    if source is None:
        return np.ascontiguousarray(array[indices])
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    out = np.empty((len(indices), *array.shape[1:]), dtype=array.dtype)
    flat = out.reshape(len(indices), -1).view(np.uint8)
    with open(source[0], "rb", buffering=0) as handle:
        for row, index in enumerate(np.asarray(indices, dtype=np.int64)):
            flat[row] = np.frombuffer(
                os.pread(handle.fileno(), row_bytes, source[1] + int(index) * row_bytes), np.uint8
            )
    return out


def _mapped_file(array: np.ndarray) -> tuple[str, int] | None:
    """``(file, byte offset)`` of an array that is a whole C-ordered memory map, else None (a
    slice of a map keeps its parent's offset, so only the map itself is trusted)."""
    if (
        isinstance(array, np.memmap)
        and isinstance(array.base, mmap.mmap)
        and array.flags.c_contiguous
        and array.filename is not None
    ):
        return str(array.filename), int(array.offset)
    return None
