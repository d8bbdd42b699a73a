"""kill -9 at random moments: the rerun finishes with the uninterrupted result, no file is ever corrupt.

Each test starts the real command in a subprocess that kills itself (SIGKILL) at a seeded random
point of its progress (``tests/helpers/kill_launcher.py``: never a clock), checks
that every output is either absent or a complete, valid version, then reruns and compares.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reid_stra.retrieval.features import FeatureMeta, load_features, save_features
from reid_stra.utils.atomic import exclusive_lock
from tests.helpers.kill_launcher import KILL_MARK, killed_launcher
from tests.helpers.robust import ENV, LAUNCHER, SIZE, assert_clean_error, debris


def _kill_at(args: list[str], point: str) -> None:
    """Run the CLI with ``args``, killed at ``point``; assert it died there, by SIGKILL."""
    process = subprocess.run(
        killed_launcher(point) + args,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,  # hang guard
    )
    assert process.returncode == -signal.SIGKILL, f"kill at {point} did not land: {process.stderr}"
    assert f"={point})" in process.stderr and KILL_MARK in process.stderr, process.stderr
    assert "Traceback" not in process.stderr, process.stderr


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(LAUNCHER + args, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_extract_killed_at_random_moments(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats.npy"
    args = ["extract", str(synthetic_root / "bounding_box_test"), "-o", str(out), "--batch-size", "4", *SIZE]
    uninterrupted = tmp_path / "reference" / "feats.npy"
    assert _run(args[:3] + [str(uninterrupted)] + args[4:]).returncode == 0
    reference, _ = load_features(uninterrupted)
    rng = random.Random(7)
    batches = len(list((synthetic_root / "bounding_box_test").glob("*.jpg"))) // 4
    points = [f"extract.batch@{rng.randint(1, max(1, batches))}", "atomic.before_replace:feats.npy@1"]
    for attempt, point in enumerate(points):
        _kill_at(args + (["--resume"] if attempt else []), point)
        if out.exists():  # the only version ever written is the complete one
            np.testing.assert_array_equal(load_features(out)[0], reference)
    resumed = _run(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(load_features(out)[0], reference)
    assert debris(tmp_path) == []  # the killed write's temporary file went with the rerun


@pytest.mark.slow
def test_chunked_extraction_resumes_after_kill(synthetic_root: Path, tmp_path: Path) -> None:
    """Small chunks, so kills land between saved chunks and --resume reuses them."""
    paths = sorted(str(p) for p in (synthetic_root / "bounding_box_train").glob("*.jpg"))[:24]

    def extract(out: Path, resume: bool, point: str | None = None):
        args = ["extract", *paths, "-o", str(out), "--batch-size", "2", "--chunk-size", "4", "--json", *SIZE]
        args += ["--resume"] if resume else []
        if point is None:
            return _run(args)
        _kill_at(args, point)
        return None

    reference_run = extract(tmp_path / "reference.npy", resume=False)
    assert reference_run.returncode == 0, reference_run.stderr
    reference = load_features(tmp_path / "reference.npy")[0]
    out = tmp_path / "feats.npy"
    rng = random.Random(11)
    # 24 images, chunks of 4, batches of 2: kill mid-chunk, then between a chunk's array and its
    # description, each time after the earlier run's finished chunks were reused.
    points = [f"extract.batch@{rng.randint(3, 9)}", f"atomic.before_replace:chunk_*.json@{rng.randint(1, 2)}"]
    for point in points:
        extract(out, resume=True, point=point)
        assert not out.exists()
    final = extract(out, resume=True)
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["reused"] > 0, "the resumed run reused no finished chunk"
    np.testing.assert_array_equal(load_features(out)[0], reference)
    assert not (tmp_path / "feats.npy.partial").exists()


@pytest.mark.slow
def test_index_build_killed_at_random_moments(tmp_path: Path) -> None:
    rows = 60_000
    array = np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32)
    array /= np.linalg.norm(array, axis=1, keepdims=True)
    features = tmp_path / "g.npy"
    save_features(features, array, FeatureMeta(paths=[f"img{i}.jpg" for i in range(rows)]))
    reference_dir = tmp_path / "ref"
    reference_dir.mkdir()
    for name in ("g.npy", "g.json"):
        (reference_dir / name).write_bytes((tmp_path / name).read_bytes())
    done = _run(["index", "build", str(reference_dir / "g.npy")])
    assert done.returncode == 0, done.stderr
    reference = (reference_dir / "g.faiss").read_bytes()
    for point in ("atomic.before_replace:g.faiss@1", "atomic.before_replace:g.faiss.json@1"):
        _kill_at(["index", "build", str(features)], point)
        index = tmp_path / "g.faiss"
        assert not index.exists() or index.read_bytes() == reference  # never a half-written index
    rebuilt = _run(["index", "build", str(features)])
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "g.faiss").read_bytes() == reference
    assert not list(tmp_path.glob(".g.faiss.*.tmp"))


def test_two_writers_of_one_output_fail_clearly(
    cli, gallery_features: Path, synthetic_root: Path, tmp_path: Path
):
    out = tmp_path / "feats.npy"
    with exclusive_lock(out):  # another reid-stra process is writing feats.npy
        result = cli("extract", synthetic_root / "query", "-o", out, *SIZE)
    assert_clean_error(result, str(out), "another reid-stra process")
    assert not out.exists()
    features = tmp_path / "g.npy"
    features.write_bytes(gallery_features.read_bytes())
    features.with_suffix(".json").write_bytes(gallery_features.with_suffix(".json").read_bytes())
    with exclusive_lock(tmp_path / "g.faiss"):
        result = cli("index", "build", features)
    assert_clean_error(result, "g.faiss", "another reid-stra process")
    assert not (tmp_path / "g.faiss").exists()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_lock_dies_with_a_killed_writer(gallery_features: Path, synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats.npy"
    args = ["extract", str(synthetic_root / "query"), "-o", str(out), *SIZE]
    _kill_at(args, "extract.batch@1")  # killed while holding the lock
    done = _run(args)  # no stale lock: the next run just works
    assert done.returncode == 0, done.stderr
