"""torch Dataset wrapper and the training DataLoader (transform + sampler + workers wired up)."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from reid_stra.data.datasets import Sample
from reid_stra.data.images import read_image
from reid_stra.data.samplers import RandomIdentitySampler, ShuffleSampler
from reid_stra.errors import ReidError, unknown_name_error

SAMPLERS = ("identity", "random")


class ImageDataset(Dataset):
    """``samples`` as ``(image_tensor, pid, camid, index)``; images decoded by :func:`read_image`.

    In the main process (``workers=0``) the transform runs on one torch thread, as it does in
    DataLoader workers: its tensor ops are tiny, and spreading them over torch's thread pool
    made them 7-30x slower on a busy CPU (BENCHMARKS.md, "Data loading").
    ``single_threaded=False`` keeps torch's setting.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Any], torch.Tensor],
        single_threaded: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.single_threaded = single_threaded

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int]:
        sample = self.samples[index]
        image = read_image(sample.path)
        threads = torch.get_num_threads()
        if not self.single_threaded or threads == 1 or get_worker_info() is not None:
            return self.transform(image), sample.pid, sample.camid, index
        torch.set_num_threads(1)  # costs well under a microsecond; restored below
        try:
            return self.transform(image), sample.pid, sample.camid, index
        finally:
            torch.set_num_threads(threads)


def build_train_loader(
    samples: Sequence[Sample],
    transform: Callable[[Any], torch.Tensor],
    *,
    batch_size: int = 64,
    sampler: str = "identity",
    num_instances: int = 4,
    workers: int = 2,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A training DataLoader whose batches are exactly the sampler's batches.

    ``sampler="identity"`` gives P x K batches (``RandomIdentitySampler``), ``"random"`` plain
    shuffling (``ShuffleSampler``); both with (seed, epoch, rank, world_size) semantics. Call
    ``loader.sampler.set_epoch(epoch)`` before every epoch. ``batch_size`` is per process.
    Worker processes are seeded from (seed, epoch, worker) by torch, so augmentation is
    reproducible too.
    """
    if sampler not in SAMPLERS:
        raise unknown_name_error("sampler", sampler, SAMPLERS)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ReidError(f"--workers {workers!r}: expected 0 or a positive number of processes")
    if sampler == "identity":
        index_sampler: RandomIdentitySampler | ShuffleSampler = RandomIdentitySampler(
            [s.pid for s in samples], batch_size, num_instances, seed=seed, rank=rank, world_size=world_size
        )
    else:
        index_sampler = ShuffleSampler(len(samples), batch_size, seed=seed, rank=rank, world_size=world_size)
    generator = torch.Generator()
    generator.manual_seed(seed * 1_000_003 + rank)
    return DataLoader(
        ImageDataset(samples, transform),
        batch_size=batch_size,
        sampler=index_sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=False,
        generator=generator,
        worker_init_fn=_seed_worker,
    )


def _seed_worker(worker_id: int) -> None:
    """Give each worker's numpy/random its own stream derived from torch's per-worker seed."""

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def reraise_worker_errors() -> Iterator[None]:
    """Turn a :class:`ReidError` raised inside a DataLoader worker back into a one-line error.

    torch re-raises worker exceptions with the worker's traceback in the message; users should
    see ``error: <path>: corrupt or truncated image`` instead. Wrap loops over loaders with it.
    """
    try:
        yield
    except ReidError as exc:
        text = str(exc)
        marker = "ReidError: "
        if "DataLoader worker" in text and marker in text:
            last = [line for line in text.splitlines() if marker in line][-1]
            raise ReidError(last.split(marker, 1)[1].strip()) from None
        raise


def worker_death(exc: BaseException) -> str | None:
    """The one-line reason when ``exc`` is torch's "a DataLoader worker died" error (killed by a
    signal or by the out-of-memory killer), else None: the run can resume from what it kept."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or "DataLoader worker" not in text:
        return None
    if "exited unexpectedly" not in text and "killed by signal" not in text:
        return None
    return " ".join(text.split())[:160]


def default_workers() -> int:
    """The ``--workers`` default of training: leave one of the cores this process may use to the
    main process (which runs the model), at most 8; 0 (decode in-process) on one core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))
