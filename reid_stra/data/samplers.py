"""Training samplers: identity-balanced P x K batches and plain shuffling, both DDP-ready.

Both samplers are *index* samplers for ``DataLoader(dataset, batch_size=B, sampler=s)`` (use
:func:`reid_stra.data.loading.build_train_loader` to get the wiring right). Their order depends
only on ``(seed, epoch)``: call ``set_epoch(epoch)`` before each epoch, like torch's
``DistributedSampler``. Under distributed training every rank builds the same global list of
batches and takes whole batches round-robin (rank r gets batches r, r + W, ...), so ranks are
disjoint, have the same length, and each rank's batches are still P ids x K images. The tail
that does not divide evenly is dropped, so ``len()`` is exact and the same on every rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from reid_stra.errors import ReidError


class _EpochSampler(Sampler[int]):
    """Shared (seed, epoch, rank, world_size) bookkeeping and the batch dealing."""

    kind = "base"

    def __init__(self, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        _check_int(batch_size, "--batch-size", 1)
        _check_int(seed, "--seed", 0)
        _check_int(world_size, "world_size", 1)
        _check_int(rank, "rank", 0)
        if rank >= world_size:
            raise ReidError(f"rank {rank}: must be below world_size {world_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (call before every epoch)."""
        _check_int(epoch, "epoch", 0)
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "epoch": self.epoch, "seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state['epoch']``; a different sampler setup would silently change the order."""
        for key in ("kind", "seed", "batch_size"):
            if key in state and state[key] != getattr(self, key):
                raise ReidError(
                    f"sampler state: {key} was {state[key]!r} when saved but is {getattr(self, key)!r} now; "
                    "resume with the same --seed and batch settings or start a new run"
                )
        self.set_epoch(int(state.get("epoch", 0)))

    @property
    def num_batches(self) -> int:
        """Batches this rank yields per epoch."""
        return self._num_global_batches() // self.world_size

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every rank's batches of ``epoch`` (default: the current one), before dealing."""
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        batches = self._build_batches(rng)
        usable = (len(batches) // self.world_size) * self.world_size
        return batches[:usable]

    def rank_batches(self, epoch: int | None = None) -> list[list[int]]:
        return self.global_batches(epoch)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        for batch in self.rank_batches():
            yield from batch

    def _num_global_batches(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_batches(self, rng: np.random.Generator) -> list[list[int]]:  # pragma: no cover
        raise NotImplementedError


class ShuffleSampler(_EpochSampler):
    """Uniform random batches (the ``random`` sampler), with the same DDP and epoch semantics."""

    kind = "random"

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size)
        _check_int(num_samples, "number of training images", 1)
        self.num_samples = int(num_samples)
        if self.num_batches == 0:
            raise ReidError(
                f"--batch-size {batch_size}: needs at least {batch_size * world_size} training images "
                f"({world_size} process(es)) but there are {num_samples}; lower --batch-size"
            )

    def _num_global_batches(self) -> int:
        return self.num_samples // self.batch_size

    def _build_batches(self, rng: np.random.Generator) -> list[list[int]]:
        order = rng.permutation(self.num_samples)
        count = self._num_global_batches()
        return [order[i * self.batch_size : (i + 1) * self.batch_size].tolist() for i in range(count)]


class RandomIdentitySampler(_EpochSampler):
    """Batches of P identities x K images (``K = num_instances``, ``P = batch_size // K``).

    Per epoch each id's images are shuffled and cut into chunks of K (the remainder is left out
    this epoch; an id with fewer than K images gives one chunk drawn with replacement). Chunks
    are then arranged so that every batch has P *distinct* ids: the number of batches depends
    only on the data, so ``len()`` is exact and identical every epoch. Very frequent ids are
    capped at one chunk per batch.
    """

    kind = "identity"

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int,
        num_instances: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size)
        _check_int(num_instances, "--num-instances", 1)
        if batch_size % num_instances:
            raise ReidError(
                f"--batch-size {batch_size}: must be a multiple of --num-instances {num_instances} "
                "(each batch is P identities x K images)"
            )
        self.num_instances = int(num_instances)
        self.num_pids_per_batch = self.batch_size // self.num_instances
        groups: dict[int, list[int]] = {}
        for index, pid in enumerate(pids):
            groups.setdefault(int(pid), []).append(index)
        if len(groups) < self.num_pids_per_batch:
            raise ReidError(
                f"--batch-size {batch_size} / --num-instances {num_instances} = {self.num_pids_per_batch} "
                f"identities per batch, but the training split has only {len(groups)}; "
                "lower --batch-size or raise --num-instances"
            )
        self._pid_list = sorted(groups)
        self._indices = [np.asarray(groups[pid], dtype=np.int64) for pid in self._pid_list]
        self._chunks = np.array([max(1, len(ix) // self.num_instances) for ix in self._indices])
        self._batches = _max_batches(self._chunks, self.num_pids_per_batch)
        if self._batches // self.world_size == 0:
            raise ReidError(
                f"--batch-size {batch_size}: too few training images for one P x K batch per process "
                f"({world_size} process(es)); lower --batch-size or --num-instances"
            )

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "num_instances": self.num_instances}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "num_instances" in state and state["num_instances"] != self.num_instances:
            raise ReidError(
                f"sampler state: --num-instances was {state['num_instances']} when saved but is "
                f"{self.num_instances} now; resume with the same setting or start a new run"
            )
        super().load_state_dict(state)

    def _num_global_batches(self) -> int:
        return self._batches

    def _build_batches(self, rng: np.random.Generator) -> list[list[int]]:
        k, p, total = self.num_instances, self.num_pids_per_batch, self._batches
        chunks_of: list[list[np.ndarray]] = []
        for indices in self._indices:
            if len(indices) < k:
                chunks_of.append([rng.choice(indices, size=k, replace=True)])
                continue
            shuffled = rng.permutation(indices)
            chunks_of.append([shuffled[i * k : (i + 1) * k] for i in range(len(indices) // k)])
        # How many chunks of each id this epoch: at most one per batch, total exactly P x batches.
        counts = np.minimum(self._chunks, total)
        excess = int(counts.sum()) - p * total
        if excess > 0:  # drop randomly chosen chunks (ids with many chunks lose more)
            owners = np.repeat(np.arange(len(counts)), counts)
            for owner in rng.choice(owners, size=excess, replace=False):
                counts[owner] -= 1
        members = _schedule(counts, p, total, rng)
        next_chunk = [0] * len(chunks_of)
        batches = []
        for ids in members:
            batch: list[int] = []
            for i in ids:
                batch.extend(chunks_of[i][next_chunk[i]].tolist())
                next_chunk[i] += 1
            batches.append(batch)
        return batches


def _max_batches(chunks: np.ndarray, p: int) -> int:
    """Largest B with sum(min(chunks, B)) >= P x B: the batches of P distinct ids we can fill."""
    batches = int(chunks.sum()) // p
    while batches > 0 and int(np.minimum(chunks, batches).sum()) < p * batches:
        batches -= 1
    return batches


def _schedule(counts: np.ndarray, p: int, batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random batches of P distinct ids using each id ``counts[i]`` times in total.

    Needs sum(counts) == P x batches and max(counts) <= batches. Each step must take every id
    whose remaining count equals the remaining batches (else it could not fit); the rest of the
    batch is drawn at random, weighted by what remains, which keeps the invariant for the next
    step, so the schedule always completes.
    """
    remaining = counts.astype(np.int64).copy()
    out = []
    for left in range(batches, 0, -1):
        forced = np.flatnonzero(remaining == left)
        optional = np.flatnonzero((remaining > 0) & (remaining < left))
        need = p - len(forced)
        weights = remaining[optional] / remaining[optional].sum() if need else None
        picked = rng.choice(optional, size=need, replace=False, p=weights) if need else optional[:0]
        ids = np.concatenate([forced, picked])
        rng.shuffle(ids)
        remaining[ids] -= 1
        out.append(ids)
    return out


def _check_int(value: Any, option: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ReidError(f"{option} {value!r}: expected an integer >= {minimum}")
