"""Atomic file writes and single-writer locks.

A killed run must never leave a half-written checkpoint, feature file or index: we write to a
temporary file in the same directory, flush and fsync it, then ``os.replace`` it over the
target, so readers see either the old or the new version. Two processes writing the same
output take an exclusive lock and the second fails clearly instead of interleaving.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from reid_stra.errors import ReidError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on clean exit it atomically replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_with(path: str | os.PathLike, writer: Callable[[IO], Any]) -> None:
    """Call ``writer(handle)`` on a binary temp file, then atomically move it to ``path``."""
    with atomic_open(path, "wb") as handle:
        writer(handle)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    import torch

    atomic_write_with(path, lambda handle: torch.save(obj, handle))


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    import numpy as np

    atomic_write_with(path, lambda handle: np.save(handle, array, allow_pickle=False))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(target: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``target`` (via ``<target>.lock``).

    Raises :class:`ReidError` at once when another process already writes the same output.
    The lock dies with the process, so a killed run never leaves a stale lock behind (its
    ``.lock`` file stays but locks nothing), and a finished one removes its ``.lock`` file; the
    temporary file of a killed writer's unfinished :func:`atomic_open` of ``target`` is removed
    once the lock is held (no one else can be writing it then).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(target.name + ".lock")
    handle = _acquire(lock_path, target)
    try:
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        yield
    finally:
        # Remove the lock file while still holding the lock, so no stray *.lock is left behind;
        # a process that opened the old file meanwhile notices (see _acquire) and fails cleanly.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        handle.close()


def ensure_not_being_written(target: str | os.PathLike) -> None:
    """Fail at once when another process writes ``target``: a check to make before slow work (a
    model load) rather than after it; the writer still takes :func:`exclusive_lock` itself."""
    with exclusive_lock(target):
        pass


def _acquire(lock_path: Path, target: Path) -> IO:
    """Open and flock ``lock_path``; the file locked must still be the one at that path."""
    busy = ReidError(
        f"{target} is being written by another reid-stra process; "
        "wait for it to finish or choose another output"
    )
    for _ in range(3):
        handle = open(lock_path, "a+")  # noqa: SIM115 - kept open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise busy from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()  # the holder removed this file as it finished: lock the new one
    raise busy
