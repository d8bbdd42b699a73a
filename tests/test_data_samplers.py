"""Sampler invariants: P x K batches, exact length, (seed, epoch) determinism, DDP shares."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reid_stra.data.samplers import RandomIdentitySampler, ShuffleSampler
from reid_stra.errors import ReidError


def _pids(counts: list[int]) -> list[int]:
    """pid i has counts[i] images; pids are spread out (10 * i) like real, sparse ids."""
    return [10 * i for i, n in enumerate(counts) for _ in range(n)]


def _max_full_batches(chunks: list[int], p: int) -> int:
    """Most batches of p distinct ids when id i can fill chunks[i] slots (one per batch at most)."""
    return max(b for b in range(sum(chunks) + 1) if sum(min(c, b) for c in chunks) >= p * b)


def _batches(sampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    flat = list(sampler)
    assert len(flat) == len(sampler)
    size = sampler.batch_size
    return [flat[i : i + size] for i in range(0, len(flat), size)]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=4, max_size=40),
    k=st.integers(1, 4),
    p=st.integers(1, 4),
    world_size=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
@pytest.mark.slow
def test_identity_batches_are_p_ids_by_k_images(counts, k, p, world_size, seed) -> None:
    pids = _pids(counts)
    try:
        samplers = [
            RandomIdentitySampler(pids, p * k, k, seed, rank, world_size) for rank in range(world_size)
        ]
    except ReidError:  # too few ids / images for one batch per rank: refused up front
        assert len(counts) < p or _max_full_batches([max(1, n // k) for n in counts], p) < world_size
        return
    shares = []
    for sampler in samplers:
        batches = _batches(sampler, epoch=1)
        assert len(batches) == sampler.num_batches > 0
        assert sampler.num_batches == _max_full_batches([max(1, n // k) for n in counts], p) // world_size
        for batch in batches:
            per_id = Counter(pids[i] for i in batch)
            assert len(per_id) == p and set(per_id.values()) == {k}
        shares.append(batches)
    assert len({len(share) for share in shares}) == 1  # equal length on every rank
    # ranks take disjoint whole batches of one global list; images repeat only for ids with < K
    global_batches = samplers[0].global_batches(epoch=1)
    assert sorted(map(tuple, (b for s in shares for b in s))) == sorted(map(tuple, global_batches))
    used = Counter(i for b in global_batches for i in b)
    assert all(n == 1 or counts[pids[i] // 10] < k for i, n in used.items())


def test_deterministic_per_seed_and_epoch_and_different_across_epochs() -> None:
    pids = _pids([6, 9, 4, 12, 3, 8, 7, 5])
    a, b = RandomIdentitySampler(pids, 8, 2, seed=5), RandomIdentitySampler(pids, 8, 2, seed=5)
    assert _batches(a, 3) == _batches(b, 3)
    assert _batches(a, 3) != _batches(a, 4)
    assert _batches(a, 3) != _batches(RandomIdentitySampler(pids, 8, 2, seed=6), 3)
    assert len({len(_batches(a, e)) for e in range(5)}) == 1  # same length every epoch


def test_ids_with_few_images_are_drawn_with_replacement() -> None:
    pids = _pids([1, 1, 1, 1])
    batch = _batches(RandomIdentitySampler(pids, 16, 4))[0]
    assert Counter(batch) == {0: 4, 1: 4, 2: 4, 3: 4}


def test_dominant_id_is_capped_at_one_chunk_per_batch() -> None:
    pids = _pids([400, 4, 4, 4, 4, 4, 4, 4])
    sampler = RandomIdentitySampler(pids, 8, 4)  # P = 2
    batches = _batches(sampler)
    assert sampler.num_batches == len(batches) == 7  # each small id pairs with the big one
    assert all(len({pids[i] for i in b}) == 2 for b in batches)


def test_state_dict_resumes_the_epoch() -> None:
    pids = _pids([5, 6, 7, 8])
    sampler = RandomIdentitySampler(pids, 4, 2, seed=1)
    sampler.set_epoch(7)
    state = sampler.state_dict()
    fresh = RandomIdentitySampler(pids, 4, 2, seed=1)
    fresh.load_state_dict(state)
    assert fresh.epoch == 7 and list(fresh) == list(sampler)
    with pytest.raises(ReidError, match="seed was 1"):
        RandomIdentitySampler(pids, 4, 2, seed=2).load_state_dict(state)
    with pytest.raises(ReidError, match="--num-instances was 2"):
        RandomIdentitySampler(pids, 4, 4, seed=1).load_state_dict(state)


def test_identity_sampler_errors() -> None:
    with pytest.raises(ReidError, match="multiple of --num-instances 4"):
        RandomIdentitySampler([0, 1, 2], 6, 4)
    with pytest.raises(ReidError, match="4 identities per batch, but the training split has only 3"):
        RandomIdentitySampler([0, 1, 2], 16, 4)
    with pytest.raises(ReidError, match="rank 2"):
        RandomIdentitySampler([0, 1, 2], 2, 1, rank=2, world_size=2)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 200), batch=st.integers(1, 16), world_size=st.integers(1, 4), seed=st.integers(0, 999)
)
def test_shuffle_sampler_shares(n, batch, world_size, seed) -> None:
    if n // batch < world_size:
        with pytest.raises(ReidError, match="--batch-size"):
            ShuffleSampler(n, batch, seed, 0, world_size)
        return
    shares = [ShuffleSampler(n, batch, seed, rank, world_size) for rank in range(world_size)]
    flat = [list(s) for s in shares]
    assert len({len(f) for f in flat}) == 1 and len(flat[0]) == len(shares[0])
    everything = [i for f in flat for i in f]
    assert len(everything) == len(set(everything)) == (n // batch // world_size) * world_size * batch
    assert all(0 <= i < n for i in everything)


def test_shuffle_sampler_epochs() -> None:
    sampler = ShuffleSampler(50, 5, seed=3)
    assert _batches(sampler, 0) == _batches(ShuffleSampler(50, 5, seed=3), 0)
    assert _batches(sampler, 0) != _batches(sampler, 1)
    assert sorted(i for b in _batches(sampler, 1) for i in b) == list(range(50))
