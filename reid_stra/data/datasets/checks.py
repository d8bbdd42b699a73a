"""Checks made after reading: undecodable images (reported or dropped) and queries no gallery can answer."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from reid_stra.data.datasets.discovery import listing
from reid_stra.data.datasets.samples import ReidDataset, Sample, relabel_train
from reid_stra.data.images import read_image
from reid_stra.errors import ReidError
from reid_stra.utils.progress import task_progress


def add_query_gallery_warnings(dataset: ReidDataset) -> None:
    """Warnings the CLI shows: query ids absent from the gallery, same-camera-only matches."""
    if not dataset.query or not dataset.gallery:
        return
    gallery_cams: dict[int, set[int]] = {}
    for s in dataset.gallery:
        gallery_cams.setdefault(s.pid, set()).add(s.camid)
    absent = sum(1 for s in dataset.query if s.pid not in gallery_cams)
    same_cam_only = sum(
        1 for s in dataset.query if s.pid in gallery_cams and gallery_cams[s.pid] <= {s.camid}
    )
    cameras = {s.camid for s in dataset.query} | {s.camid for s in dataset.gallery}
    total = len(dataset.query)
    if len(cameras) == 1:
        dataset.warnings.append(
            f"query and gallery all come from camera {next(iter(cameras))}: standard evaluation ignores "
            "same-id same-camera matches, so no query can be scored; use data with several cameras"
        )
    elif same_cam_only:
        dataset.warnings.append(
            f"{same_cam_only} of {total} queries have their matches only in the same camera, which "
            "standard evaluation ignores; those queries will not be scored"
        )
    if absent:
        dataset.warnings.append(
            f"{absent} of {total} queries have an id that is absent from the gallery; they will not be scored"
        )


def verify_images(
    paths: Iterable[str | os.PathLike | Sample], progress: bool = True
) -> list[tuple[str, str]]:
    """Decode every image (through :func:`read_image`); return ``(path, reason)`` for bad ones."""
    items = [p.path if isinstance(p, Sample) else str(p) for p in paths]
    bad: list[tuple[str, str]] = []
    with task_progress("verifying images", total=len(items), unit="img", show=progress) as advance:
        for path in items:
            try:
                read_image(path)
            except ReidError as exc:
                reason = str(exc)
                bad.append((path, reason[len(path) + 2 :] if reason.startswith(path + ": ") else reason))
            advance()
    return bad


def verify_dataset(
    dataset: ReidDataset, skip_bad: bool, wanted: Sequence[str], progress: bool = True
) -> None:
    everything = [s for samples in dataset.splits().values() for s in samples]
    bad = verify_images(everything, progress)
    if not bad:
        return
    if not skip_bad:
        first_path, first_reason = bad[0]
        more = f" (+{len(bad) - 1} more: {listing([p for p, _ in bad[1:]])})" if len(bad) > 1 else ""
        raise ReidError(
            f"{len(bad)} unreadable image(s) in {dataset.root}: {first_path}: {first_reason}{more}; "
            "fix or remove them, or allow skipping them (--skip-bad)"
        )
    bad_paths = {p for p, _ in bad}
    dataset.train = [s for s in dataset.train if s.path not in bad_paths]
    dataset.query = [s for s in dataset.query if s.path not in bad_paths]
    dataset.gallery = [s for s in dataset.gallery if s.path not in bad_paths]
    dataset.val = [s for s in dataset.val if s.path not in bad_paths]
    if dataset.train_pid_map:  # an id may have lost all its images: keep labels dense
        inverse = {label: pid for pid, label in dataset.train_pid_map.items()}
        original = [Sample(s.path, inverse[s.pid], s.camid) for s in dataset.train]
        dataset.train, dataset.train_pid_map = relabel_train(original)
    dataset.skipped = bad
    dataset.warnings.append(f"skipped {len(bad)} unreadable image(s): {listing([p for p, _ in bad])}")
    for split in wanted:
        if not dataset.splits()[split]:
            raise ReidError(f"{dataset.root}: every {split} image is unreadable; nothing left to use")
