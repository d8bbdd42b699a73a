"""The validation split carved from training ids: disjoint, relabelled, the same for every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reid_stra.data.datasets import load_dataset
from reid_stra.data.datasets.holdout import hold_out_ids
from reid_stra.data.datasets.samples import ReidDataset, Sample
from reid_stra.errors import ReidError


def test_held_out_ids_leave_training_and_form_a_query_gallery(synthetic_root: Path) -> None:
    dataset = load_dataset("market1501", synthetic_root)
    originals = {pid for pid in dataset.train_pid_map}
    rest, holdout = hold_out_ids(dataset, 3)
    held = {s.pid for s in holdout.query}
    assert len(held) == 3 and held <= originals
    assert {s.pid for s in holdout.gallery} == held
    # Training keeps exactly the other ids, relabelled 0..N-1, with their images.
    assert set(rest.train_pid_map) == originals - held
    assert sorted({s.pid for s in rest.train}) == list(range(len(originals) - 3))
    assert rest.num_train_pids == len(originals) - 3
    held_paths = {s.path for s in holdout.query + holdout.gallery}
    assert not held_paths & {s.path for s in rest.train}
    assert len(held_paths) + len(rest.train) == len(dataset.train)
    # One query per id and camera; the test split is untouched.
    assert len(holdout.query) == len({(s.pid, s.camid) for s in holdout.query})
    assert rest.query == dataset.query and rest.gallery == dataset.gallery
    # Labels still name the same person: the map agrees with the samples.
    by_label = {label: pid for pid, label in rest.train_pid_map.items()}
    label_to_original = {label: pid for pid, label in dataset.train_pid_map.items()}
    original_of = {s.path: label_to_original[s.pid] for s in dataset.train}
    assert all(by_label[s.pid] == original_of[s.path] for s in rest.train)


def test_the_same_ids_are_held_out_every_time(synthetic_root: Path) -> None:
    dataset = load_dataset("market1501", synthetic_root)
    first = hold_out_ids(dataset, 2)[1]
    again = hold_out_ids(load_dataset("market1501", synthetic_root), 2)[1]
    assert first == again


@pytest.mark.parametrize("count", [-1, 0, 7, 100])
def test_impossible_counts_fail_in_one_line_naming_the_option(synthetic_root: Path, count: int) -> None:
    dataset = load_dataset("market1501", synthetic_root)  # 8 training ids: at most 6 can go
    with pytest.raises(ReidError, match=r"^--val-ids") as error:
        hold_out_ids(dataset, count)
    assert "\n" not in str(error.value)


def test_ids_seen_by_one_camera_are_never_held_out(tmp_path: Path) -> None:
    train = [Sample(f"{pid}_{cam}_{i}.jpg", pid, cam) for pid in range(4) for cam in (1, 2) for i in range(2)]
    train += [Sample(f"9_{i}.jpg", 4, 1) for i in range(3)]  # label 4: one camera only
    dataset = ReidDataset("toy", tmp_path, train, [], [], train_pid_map={10 + i: i for i in range(5)})
    rest, holdout = hold_out_ids(dataset, 2)
    assert 14 not in {s.pid for s in holdout.query}
    with pytest.raises(ReidError, match="two or more cameras"):
        hold_out_ids(dataset, 4)  # 4 two-camera ids, but then only one id would stay to train on
