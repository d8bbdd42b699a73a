"""Built-in synthetic re-ID data in the exact Market-1501 layout (no download needed).

Each identity is a drawn person (head, hair, torso, arms, legs, shoes) whose *identity* shows in
clothing colours, patterns (stripes, two-tone, logo), sleeves/shorts, hat, bag and body shape,
and whose *camera* shows in background colour/texture, brightness/tint, blur, scale and offset.
Every image also gets pose, position and facing jitter. A model has to learn to look at the
person and ignore the camera, which a CPU model does in about a minute, while an untrained one
is fooled by the backgrounds. Everything is deterministic in ``seed``: each image is drawn from
its own random stream keyed by (seed, split, pid, camera, index), so the output does not depend
on the order of generation.

Layout (like Market-1501): ``bounding_box_train/`` (train ids), ``query/`` (one image per test
id per camera), ``bounding_box_test/`` (the other test images, plus distractors ``0000_*`` and
junk ``-1_*``). File names are ``PPPP_cCsS_FFFFFF_BB.jpg``.

How one person or camera is drawn lives in :mod:`reid_stra.data.synthetic_people`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reid_stra.data.images import is_image_file
from reid_stra.data.synthetic_people import Look, camera_style, person_look, render
from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_json
from reid_stra.utils.progress import task_progress

SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")
MANIFEST_NAME = "synthetic.json"
MANIFEST_FORMAT = 1
_JPEG_QUALITY = 92
_DISTRACTOR_PID_BASE = 100_000  # random stream keys for distractor looks (never written as ids)
_TRAIN, _QUERY, _GALLERY, _DISTRACTOR, _JUNK = 1, 2, 3, 4, 5


def make_synthetic_dataset(
    root: str | os.PathLike,
    num_train_ids: int = 40,
    num_test_ids: int = 20,
    cameras: int = 4,
    images_per_id_cam: int = 4,
    size: Sequence[int] = (128, 64),
    seed: int = 0,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic Market-1501-layout dataset under ``root`` and return ``root``.

    ``images_per_id_cam`` images are drawn per identity and camera; for test ids one of them
    (per camera) goes to ``query/`` and the rest to ``bounding_box_test/``. ``size`` is
    (height, width). A folder that already holds the same dataset (same parameters, all files
    present) is reused as is; any other non-empty dataset folder needs ``overwrite=True``.
    """
    params = _validated_params(
        num_train_ids, num_test_ids, cameras, images_per_id_cam, size, seed, num_distractors, num_junk
    )
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ReidError(f"{root}: exists and is not a folder; choose a folder for the synthetic dataset")
    if not overwrite and _is_same_dataset(root, params):
        return root
    existing = [name for name in SPLIT_FOLDERS if (root / name).exists()]
    if existing and not overwrite:
        raise ReidError(
            f"{root}: already holds {', '.join(existing)}/ from another dataset; "
            "use --force (overwrite=True) or choose an empty folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    # Draw into a hidden sibling folder and move the finished splits in at the end, so an
    # interrupted run never leaves a half-written dataset that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    try:
        counts = _write_all(staging, params, progress)
        for name in SPLIT_FOLDERS:
            if (root / name).exists():
                shutil.rmtree(root / name)
            os.replace(staging / name, root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_json(root / MANIFEST_NAME, {"format": MANIFEST_FORMAT, "params": params, "counts": counts})
    return root


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters and per-split image counts of a synthetic dataset, or None if absent."""

    path = Path(root) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def synthetic_pids(num_train_ids: int, num_test_ids: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """The original (file-name) ids of the train and test identities, sorted.

    Ids are drawn from 1..(train+test)*2 so they have gaps like real data, which makes the
    training relabelling (sorted ids -> 0..N-1) visible.
    """
    rng = np.random.default_rng([seed, 0])
    total = num_train_ids + num_test_ids
    pool = rng.choice(np.arange(1, 2 * total + 1), size=total, replace=False)
    return sorted(int(p) for p in pool[:num_train_ids]), sorted(int(p) for p in pool[num_train_ids:])


def _validated_params(
    num_train_ids: int,
    num_test_ids: int,
    cameras: int,
    images_per_id_cam: int,
    size: Sequence[int],
    seed: int,
    num_distractors: int | None,
    num_junk: int | None,
) -> dict[str, Any]:
    def check(value: Any, option: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise ReidError(f"{option} {value}: expected an integer from {low} to {high}")
        return int(value)

    if len(size) != 2:
        raise ReidError(f"size {tuple(size)}: expected (height, width)")
    total = check(num_train_ids, "--train-ids", 1, 4999) + check(num_test_ids, "--test-ids", 1, 4999)
    if total > 4999:
        raise ReidError(f"--train-ids + --test-ids = {total}: at most 4999 (ids are 4-digit in file names)")
    if num_distractors is None:
        num_distractors = max(2, num_test_ids // 2)
    if num_junk is None:
        num_junk = max(2, num_test_ids // 4)
    return {
        "num_train_ids": int(num_train_ids),
        "num_test_ids": int(num_test_ids),
        "cameras": check(cameras, "--cameras", 2, 9),
        "images_per_id_cam": check(images_per_id_cam, "--images-per-id-cam", 2, 999),
        "size": [check(size[0], "size height", 16, 1024), check(size[1], "size width", 8, 512)],
        "seed": check(seed, "--seed", 0, 2**32 - 1),
        "num_distractors": check(num_distractors, "num_distractors", 0, 100_000),
        "num_junk": check(num_junk, "num_junk", 0, 100_000),
    }


def _is_same_dataset(root: Path, params: dict[str, Any]) -> bool:
    manifest = read_manifest(root)
    if manifest is None or manifest.get("params") != params:
        return False
    counts = manifest.get("counts", {})
    for name in SPLIT_FOLDERS:
        folder = root / name
        if not folder.is_dir():
            return False
        if sum(1 for entry in os.scandir(folder) if is_image_file(entry.name)) != counts.get(name):
            return False
    return True


def _write_all(out: Path, params: dict[str, Any], progress: bool) -> dict[str, int]:
    """Draw every image of the dataset into ``out``; return the image count per split folder."""
    seed, cameras, per_cam = params["seed"], params["cameras"], params["images_per_id_cam"]
    height, width = params["size"]
    train_pids, test_pids = synthetic_pids(params["num_train_ids"], params["num_test_ids"], seed)
    cams = {c: camera_style(seed, c) for c in range(1, cameras + 1)}
    frames = _FrameCounter(seed, cameras)
    jobs: list[tuple[str, int, int, Look, int, int]] = []  # (folder, pid, cam, look, stream, k)
    for pid in train_pids:
        for cam in range(1, cameras + 1):
            jobs += [
                ("bounding_box_train", pid, cam, person_look(seed, pid), _TRAIN, k) for k in range(per_cam)
            ]
    for pid in test_pids:
        for cam in range(1, cameras + 1):
            jobs.append(("query", pid, cam, person_look(seed, pid), _QUERY, 0))
            jobs += [
                ("bounding_box_test", pid, cam, person_look(seed, pid), _GALLERY, k)
                for k in range(1, per_cam)
            ]
    extra_rng = np.random.default_rng([seed, 4])
    for j in range(params["num_distractors"]):
        cam = int(extra_rng.integers(1, cameras + 1))
        jobs.append(
            ("bounding_box_test", 0, cam, person_look(seed, _DISTRACTOR_PID_BASE + j), _DISTRACTOR, j)
        )
    for j in range(params["num_junk"]):
        cam = int(extra_rng.integers(1, cameras + 1))
        jobs.append(("bounding_box_test", -1, cam, person_look(seed, 2 * _DISTRACTOR_PID_BASE + j), _JUNK, j))

    for name in SPLIT_FOLDERS:
        (out / name).mkdir()
    counts = dict.fromkeys(SPLIT_FOLDERS, 0)
    with task_progress("synthetic data", total=len(jobs), unit="img", show=progress) as advance:
        for folder, pid, cam, look, stream, k in jobs:
            rng = np.random.default_rng([seed, stream, pid + 1, cam, k])
            image = render(look, cams[cam], rng, (height, width), junk=stream == _JUNK)
            image.save(out / folder / frames.name(pid, cam, rng), quality=_JPEG_QUALITY)
            counts[folder] += 1
            advance()
    return counts


class _FrameCounter:
    """Unique, increasing Market-style ``sS_FFFFFF`` frame numbers per camera."""

    def __init__(self, seed: int, cameras: int) -> None:
        rng = np.random.default_rng([seed, 5])
        self._frame = {c: int(rng.integers(100, 5000)) for c in range(1, cameras + 1)}

    def name(self, pid: int, cam: int, rng: np.random.Generator) -> str:
        self._frame[cam] += int(rng.integers(1, 60))
        frame = self._frame[cam]
        sequence = 1 + frame // 200_000
        box = int(rng.integers(1, 4))
        person = "-1" if pid < 0 else f"{pid:04d}"
        return f"{person}_c{cam}s{sequence}_{frame:06d}_{box:02d}.jpg"
