"""The torch Dataset wrapper and the training loader on the synthetic data."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from reid_stra.data.datasets import load_dataset
from reid_stra.data.loading import ImageDataset, build_train_loader, reraise_worker_errors
from reid_stra.data.transforms import build_eval_transform, build_train_transform
from reid_stra.errors import ReidError


def test_image_dataset_items(synthetic_root: Path) -> None:
    data = load_dataset("market1501", synthetic_root)
    dataset = ImageDataset(data.query, build_eval_transform((64, 32)))
    image, pid, camid, index = dataset[5]
    assert image.shape == (3, 64, 32)
    assert (pid, camid, index) == (data.query[5].pid, data.query[5].camid, 5)
    assert len(dataset) == len(data.query)


def test_main_process_transform_runs_on_one_thread_and_restores(synthetic_root: Path) -> None:
    data = load_dataset("market1501", synthetic_root)
    seen = []

    def transform(image):
        seen.append(torch.get_num_threads())
        return build_eval_transform((32, 16))(image)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        single, pooled = (
            ImageDataset(data.query, transform),
            ImageDataset(data.query, transform, single_threaded=False),
        )
        assert torch.equal(single[0][0], pooled[0][0])
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_identity_loader_yields_pk_batches(synthetic_root: Path) -> None:
    data = load_dataset("market1501", synthetic_root)
    loader = build_train_loader(
        data.train, build_train_transform((64, 32)), batch_size=8, num_instances=2, workers=0, seed=1
    )
    loader.sampler.set_epoch(0)
    batches = list(loader)
    assert len(batches) == len(loader) == loader.sampler.num_batches
    for images, pids, _, indices in batches:
        assert images.shape == (8, 3, 64, 32)
        assert set(Counter(pids.tolist()).values()) == {2} and len(set(pids.tolist())) == 4
        assert all(data.train[i].pid == p for i, p in zip(indices.tolist(), pids.tolist(), strict=True))
        assert int(pids.max()) < data.num_train_pids


def test_random_loader_with_a_worker_and_ranks(synthetic_root: Path) -> None:
    data = load_dataset("market1501", synthetic_root)
    seen = []
    for rank in range(2):
        loader = build_train_loader(
            data.train, build_eval_transform((32, 16)), batch_size=6, sampler="random", workers=1,
            rank=rank, world_size=2,
        )  # fmt: skip
        loader.sampler.set_epoch(2)
        seen.append([i for _, _, _, idx in loader for i in idx.tolist()])
    assert len(seen[0]) == len(seen[1]) == 24 and not set(seen[0]) & set(seen[1])


def test_loader_option_errors(synthetic_root: Path) -> None:
    data = load_dataset("market1501", synthetic_root)
    with pytest.raises(ReidError, match="unknown sampler 'pk'"):
        build_train_loader(data.train, build_eval_transform(), sampler="pk")
    with pytest.raises(ReidError, match="--workers -1"):
        build_train_loader(data.train, build_eval_transform(), workers=-1)


def test_corrupt_image_in_a_worker_is_one_line(synthetic_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    data = load_dataset("market1501", root)
    bad = Path(data.train[0].path)
    bad.write_bytes(b"garbage")
    loader = build_train_loader(
        data.train, build_eval_transform((32, 16)), batch_size=48, sampler="random", workers=1
    )
    with pytest.raises(ReidError) as info, reraise_worker_errors():
        for _ in loader:
            pass
    assert str(info.value) == f"{bad}: not a readable image (unknown format or empty file)"
