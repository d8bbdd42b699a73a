"""FAISS's on-disk inverted lists: an IVF index whose lists live in a data file beside it.

A search memory-maps the data file and reads only the lists it probes, so an index larger than
RAM can be searched. The file is written by merging saved indexes' lists into it with
``faiss.contrib.ondisk.merge_ondisk``, as FAISS's ``demo_ondisk_ivf.py`` does: the shards of
:mod:`reid_stra.retrieval.index_shards`, or the single index ``index build --on-disk`` built.
Naming and publishing the files beside the features is :mod:`reid_stra.retrieval.index_store`'s job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import faiss
from faiss.contrib.ondisk import merge_ondisk

from reid_stra.errors import ReidError


def ivfdata_path(index_file: Path) -> Path:
    """``feats.faiss`` -> ``feats.faiss.ivfdata``, the file holding its inverted lists."""
    return index_file.with_name(index_file.name + ".ivfdata")


@contextlib.contextmanager
def lists_on_disk(index: Any, shard_files: Sequence[Path], data_file: Path) -> Iterator[tuple[Any, Path]]:
    """Yield ``(index, written)``: ``index`` with its inverted lists in ``written``, a temporary
    sibling of ``data_file`` that the caller moves there (the index names ``data_file``).

    With ``shard_files`` (saved indexes added to copies of ``index``, which is trained and empty)
    the lists are theirs, read through memory maps, never loaded whole; without, ``index``'s own
    (it is saved to a temporary shard first: one merge does both). Temporary files are removed on
    the way out; their names match the stale files :func:`exclusive_lock` of the index clears.
    """
    temporary: list[Path] = []

    def sibling(role: str) -> Path:
        temporary.append(data_file.with_name(f".{data_file.name}.{secrets.token_hex(4)}.{role}.tmp"))
        return temporary[-1]

    try:
        if not shard_files:
            shard = sibling("shard")
            faiss.write_index(index, str(shard))
            shard_files, index = [shard], _empty_copy(shard)
        written = sibling("data")
        with _c_stdout_silenced():  # FAISS reports "resizing FILE" with printf, onto --json output
            merge_ondisk(index, [str(path) for path in shard_files], str(written))
        _ondisk_lists(index).filename = data_file.name  # found beside the index when read
        yield index, written
    finally:
        for path in temporary:
            path.unlink(missing_ok=True)


def read_ondisk_index(index_file: Path) -> Any:
    """Load an on-disk index for search: the index proper is read, its data file memory-mapped
    read-only, so a search pages in only the lists it probes.

    The data file named in the index is looked for beside it, so the pair can be moved together
    (FAISS's ``IO_FLAG_ONDISK_SAME_DIR`` does the same but prints a line on stdout).
    """
    index = faiss.read_index(str(index_file), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    lists = _ondisk_lists(index)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise ReidError(f"{index_file}: its description says on-disk lists, the index has none; rebuild it")
    data = index_file.with_name(Path(lists.filename).name)
    try:
        size = data.stat().st_size
    except OSError:
        size = None
    if size != lists.totsize:
        state = "missing" if size is None else f"{size} bytes, not the {lists.totsize} the index expects"
        raise ReidError(
            f"{data}: the inverted lists of {index_file.name} are {state}; "
            "rebuild the index with `reid-stra index build ... --on-disk` or merge its shards again"
        )
    lists.filename = str(data)
    lists.do_mmap()
    return index


def _empty_copy(index_file: Path) -> Any:
    """The trained structure of a saved IVF index without its vectors (their lists not loaded)."""
    index = faiss.read_index(str(index_file), faiss.IO_FLAG_MMAP)
    ivf = faiss.extract_index_ivf(index)
    empty = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.replace_invlists(empty, True)
    empty.this.disown()  # the index owns it now
    index.reset()
    return index


def _ondisk_lists(index: Any) -> Any:
    """The inverted lists of an IVF index (possibly under a PCA), as their own class."""
    return faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)


@contextlib.contextmanager
def _c_stdout_silenced() -> Iterator[None]:
    """Send what C code prints on stdout (file descriptor 1) to /dev/null meanwhile."""
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        libc.fflush(None)  # C's buffered stdout, before it points back at the real one
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
