"""The built-in synthetic dataset: Market-1501 layout, names, ids, cameras, determinism, signal."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.data.datasets import load_dataset
from reid_stra.data.synthetic import make_synthetic_dataset, read_manifest, synthetic_pids
from reid_stra.errors import ReidError

NAME = re.compile(r"^(?P<pid>\d{4}|-1)_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d{6})_(?P<box>\d{2})\.jpg$")
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _names(root: Path, split: str) -> list[re.Match]:
    names = sorted(p.name for p in (root / split).iterdir())
    matches = [NAME.match(n) for n in names]
    assert all(matches), [n for n, m in zip(names, matches, strict=True) if not m]
    return matches


def test_layout_and_names(synthetic_root: Path) -> None:
    assert all((synthetic_root / split).is_dir() for split in SPLITS)
    for split in SPLITS:
        for match in _names(synthetic_root, split):
            with Image.open(synthetic_root / split / match.group(0)) as img:
                assert img.size == (64, 128) and img.mode == "RGB"


def test_ids_and_cameras(synthetic_root: Path) -> None:
    train = Counter((int(m["pid"]), int(m["cam"])) for m in _names(synthetic_root, "bounding_box_train"))
    query = Counter((int(m["pid"]), int(m["cam"])) for m in _names(synthetic_root, "query"))
    gallery = Counter((int(m["pid"]), int(m["cam"])) for m in _names(synthetic_root, "bounding_box_test"))
    train_pids, test_pids = synthetic_pids(8, 6, seed=0)
    assert {p for p, _ in train} == set(train_pids) and len(train_pids) == 8
    assert {p for p, _ in query} == set(test_pids) and not set(train_pids) & set(test_pids)
    # every id in every camera: train 2 per camera; query 1 per id and camera; gallery the rest
    assert set(train.values()) == {2} and len(train) == 8 * 3
    assert set(query.values()) == {1} and len(query) == 6 * 3
    real = {key: n for key, n in gallery.items() if key[0] > 0}
    assert set(real) == set(query) and set(real.values()) == {1}
    # distractors (0000) and junk (-1) like Market-1501
    assert sum(n for (p, _), n in gallery.items() if p == 0) == 3
    assert sum(n for (p, _), n in gallery.items() if p == -1) == 2
    assert {c for _, c in train} == {c for _, c in gallery} == {1, 2, 3}
    names = [m.group(0) for split in SPLITS for m in _names(synthetic_root, split)]
    assert len(names) == len(set(names))


def test_manifest_records_what_was_written(synthetic_root: Path) -> None:
    manifest = read_manifest(synthetic_root)
    assert manifest is not None
    assert manifest["params"]["num_train_ids"] == 8 and manifest["params"]["size"] == [128, 64]
    assert manifest["counts"] == {"bounding_box_train": 48, "query": 18, "bounding_box_test": 23}


def _small(root: Path, **kwargs) -> Path:
    params = {"num_train_ids": 3, "num_test_ids": 2, "cameras": 2, "images_per_id_cam": 2, "size": (64, 32)}
    return make_synthetic_dataset(root, **{**params, **kwargs})


def _contents(root: Path) -> dict[str, bytes]:
    return {f"{s}/{p.name}": p.read_bytes() for s in SPLITS for p in sorted((root / s).iterdir())}


def test_deterministic_by_seed(tmp_path: Path) -> None:
    first, second = _small(tmp_path / "a", seed=3), _small(tmp_path / "b", seed=3)
    assert _contents(first) == _contents(second)
    other = _small(tmp_path / "c", seed=4)
    assert _contents(other) != _contents(first)


def test_reuse_overwrite_and_refusal(tmp_path: Path) -> None:
    root = _small(tmp_path / "d")
    stamp = (root / "query").stat().st_mtime_ns
    assert _small(root) == root and (root / "query").stat().st_mtime_ns == stamp  # same data: reused
    with pytest.raises(ReidError, match="already holds .*--force"):
        _small(root, seed=9)
    _small(root, seed=9, overwrite=True)
    assert read_manifest(root)["params"]["seed"] == 9
    assert not [p for p in root.iterdir() if p.name.startswith(".synthetic-")]  # staging cleaned up
    next(iter((root / "query").iterdir())).unlink()  # an incomplete copy is not "the same data"
    with pytest.raises(ReidError, match="already holds"):
        _small(root, seed=9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cameras": 1}, "--cameras 1"),
        ({"images_per_id_cam": 1}, "--images-per-id-cam 1"),
        ({"num_train_ids": 0}, "--train-ids 0"),
        ({"num_train_ids": 4000, "num_test_ids": 1000}, "at most 4999"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ReidError, match=message):
        _small(tmp_path / "e", **kwargs)


def _hue_histogram(path: str) -> np.ndarray:
    """Saturation-weighted hue histogram of the body region: a crude clothing-colour descriptor."""
    hsv = np.asarray(Image.open(path).convert("HSV"), np.float32)[30:100, 20:44]
    hist = np.histogram(hsv[..., 0], bins=24, range=(0, 256), weights=hsv[..., 1])[0]
    return hist / (np.linalg.norm(hist) + 1e-6)


def test_identity_shows_in_clothes(synthetic_root: Path) -> None:
    """Even a colour histogram finds the same person in another camera far above chance (1/6)."""
    data = load_dataset("market1501", synthetic_root)
    query = np.stack([_hue_histogram(s.path) for s in data.query])
    gallery = np.stack([_hue_histogram(s.path) for s in data.gallery])
    hits = 0
    for q, sample in zip(query, data.query, strict=True):
        allowed = [
            i for i, g in enumerate(data.gallery) if not (g.pid == sample.pid and g.camid == sample.camid)
        ]
        best = max(allowed, key=lambda i: float(q @ gallery[i]))
        hits += data.gallery[best].pid == sample.pid
    assert hits / len(data.query) >= 0.4


def test_camera_shows_in_background(synthetic_root: Path) -> None:
    """The image borders (background) tell the camera apart: a nearest-mean classifier gets it."""
    data = load_dataset("market1501", synthetic_root)
    samples = data.train + data.query + data.gallery

    def border(path: str) -> np.ndarray:
        pixels = np.asarray(Image.open(path), np.float32)
        return np.concatenate([pixels[:, :6].reshape(-1, 3).mean(0), pixels[:, -6:].reshape(-1, 3).mean(0)])

    features = np.stack([border(s.path) for s in samples])
    cams = np.array([s.camid for s in samples])
    means = {c: features[cams == c].mean(0) for c in set(cams.tolist())}
    predicted = [min(means, key=lambda c: float(np.linalg.norm(f - means[c]))) for f in features]
    assert np.mean(np.array(predicted) == cams) >= 0.9
