"""A validation split carved from the training identities.

Choosing a recipe or a variant by its mAP on the test query/gallery fits the choice to the test
set; holding out some training identities gives a query/gallery to choose on instead, and the
test split is then looked at once per finished run. The held-out ids are the same for every run
on the same training set (a fixed draw, whatever the run's seed), so variants compare on one
split. Only ids seen by at least two cameras can be held out: the standard protocol drops
same-camera matches, so a one-camera id would have nothing to find.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from typing import NamedTuple

from reid_stra.data.datasets.samples import ReidDataset, Sample
from reid_stra.errors import ReidError

HOLDOUT_DRAW = 0  # the fixed seed of the draw (not the run's --seed: every run gets the same ids)


class Holdout(NamedTuple):
    """The held-out ids' query (one image per id and camera) and gallery (all their other images)."""

    query: list[Sample]
    gallery: list[Sample]


def hold_out_ids(dataset: ReidDataset, count: int) -> tuple[ReidDataset, Holdout]:
    """Split ``count`` training ids off ``dataset``: (the dataset training on the rest, the holdout).

    The remaining ids are relabelled 0..N-1 (in the order of their original ids); query and
    gallery samples carry the original ids, as a dataset's own query/gallery do. The dataset's
    test query/gallery are kept unchanged.
    """
    label_to_pid = {label: pid for pid, label in dataset.train_pid_map.items()}
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for sample in dataset.train:
        by_pid[label_to_pid.get(sample.pid, sample.pid)].append(sample)
    eligible = sorted(pid for pid, samples in by_pid.items() if len({s.camid for s in samples}) >= 2)
    if count < 1 or count > len(eligible) or len(by_pid) - count < 2:
        raise ReidError(
            f"--val-ids {count}: choose 1..{min(len(eligible), len(by_pid) - 2)} (of {len(by_pid)} "
            f"training ids, {len(eligible)} are seen by two or more cameras and at least 2 must stay "
            "for training), or 0 to validate on the dataset's query/gallery"
        )
    held = set(random.Random(HOLDOUT_DRAW).sample(eligible, count))
    query: list[Sample] = []
    gallery: list[Sample] = []
    for pid in sorted(held):
        first_per_camera: set[int] = set()
        for sample in sorted(by_pid[pid], key=lambda s: s.path):
            original = Sample(sample.path, pid, sample.camid)
            if sample.camid in first_per_camera:
                gallery.append(original)
            else:
                first_per_camera.add(sample.camid)
                query.append(original)
    kept = sorted(pid for pid in by_pid if pid not in held)
    pid_map = {pid: label for label, pid in enumerate(kept)}
    train = [
        Sample(s.path, pid_map[label_to_pid.get(s.pid, s.pid)], s.camid)
        for s in dataset.train
        if label_to_pid.get(s.pid, s.pid) not in held
    ]
    return dataclasses.replace(dataset, train=train, train_pid_map=pid_map), Holdout(query, gallery)
