"""How a training loop (train, adapt) ends when it is stopped mid-way: with what it kept and how to go on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reid_stra.data.loading import worker_death
from reid_stra.errors import Interrupted, ReidError


@contextmanager
def resumable(interrupted: Callable[[], Interrupted]) -> Iterator[None]:
    """Turn Ctrl-C, and a DataLoader worker killed under the run (signal, out-of-memory killer),
    into ``interrupted()``'s message of what is kept plus the ``--resume`` hint; every other
    error passes through unchanged."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted() from None
    except RuntimeError as exc:
        if (reason := worker_death(exc)) is None:
            raise
        raise ReidError(f"{reason}; {interrupted().kept}; rerun the same command with --resume") from None
