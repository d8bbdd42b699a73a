"""kill -9 at random moments: the rerun finishes with the uninterrupted result, no file is ever corrupt.

Each test starts the real command in a subprocess, sends SIGKILL after a seeded random delay, checks
that every output is either absent or a complete, valid version, then reruns and compares.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reid_stra.retrieval.features import FeatureMeta, load_features, save_features
from reid_stra.utils.atomic import exclusive_lock
from tests.robustness.conftest import SIZE, assert_clean_error, debris

LAUNCHER = [sys.executable, "-c", "from reid_stra.cli.app import main; main()"]
ENV = os.environ | {"REID_STRA_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


def _kill_after(args: list[str], delay: float) -> int | None:
    """Run ``reid-stra ARGS``; SIGKILL it after ``delay`` s. Returns its exit code if it finished first."""
    process = subprocess.Popen(LAUNCHER + args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    stderr = process.stderr.read().decode() if process.stderr else ""
    process.stderr.close()
    assert "Traceback" not in stderr, stderr
    return None if process.returncode == -signal.SIGKILL else process.returncode


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(LAUNCHER + args, env=ENV, capture_output=True, text=True, timeout=300)


def test_extract_killed_at_random_moments(
    gallery_features: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    reference, _ = load_features(gallery_features)
    out = tmp_path / "feats.npy"
    args = ["extract", str(synthetic_root / "bounding_box_test"), "-o", str(out), *SIZE]
    rng = random.Random(7)
    for attempt in range(2):
        _kill_after(args + (["--resume"] if attempt else []), rng.uniform(2.0, 9.0))
        if out.exists():  # the only version ever written is the complete one
            np.testing.assert_array_equal(load_features(out)[0], reference)
        assert not list(tmp_path.glob(".*.tmp"))
    resumed = _run(args + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(load_features(out)[0], reference)
    assert debris(tmp_path) == []


def test_chunked_extraction_resumes_after_kill(synthetic_root: Path, tmp_path: Path) -> None:
    """Small chunks, so kills land between saved chunks and --resume reuses them."""
    paths = sorted(str(p) for p in (synthetic_root / "bounding_box_train").glob("*.jpg"))[:24]
    script = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from reid_stra.models import load_model\n"
        "from reid_stra.retrieval.extract_file import extract_to_file\n"
        "model, info = load_model(None, None, device='cpu')\n"
        "paths = open(sys.argv[1]).read().split('\\n')\n"
        "s = extract_to_file(model, info, paths, sys.argv[2], resume=sys.argv[3] == '1', workers=0,\n"
        "    input_size=(64, 32), batch_size=2, chunk_size=4, progress=False)\n"
        "print(s.reused)\n"
    )
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(paths))

    def extract(out: Path, resume: bool, delay: float | None = None):
        command = [sys.executable, "-c", script, str(listing), str(out), "1" if resume else "0"]
        if delay is None:
            return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        return None

    reference_run = extract(tmp_path / "reference.npy", resume=False)
    assert reference_run.returncode == 0, reference_run.stderr
    reference = load_features(tmp_path / "reference.npy")[0]
    out = tmp_path / "feats.npy"
    rng = random.Random(11)
    for _ in range(2):
        extract(out, resume=True, delay=rng.uniform(3.0, 9.0))
        if out.exists():
            np.testing.assert_array_equal(load_features(out)[0], reference)
    final = extract(out, resume=True)
    assert final.returncode == 0, final.stderr
    np.testing.assert_array_equal(load_features(out)[0], reference)
    assert not (tmp_path / "feats.npy.partial").exists()


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
    rng = random.Random(3)
    for _ in range(2):
        _kill_after(["index", "build", str(features)], rng.uniform(2.0, 8.0))
        index = tmp_path / "g.faiss"
        assert not index.exists() or index.read_bytes() == reference  # never a half-written index
        assert not list(tmp_path.glob(".*.tmp"))
    rebuilt = _run(["index", "build", str(features)])
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (tmp_path / "g.faiss").read_bytes() == reference


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


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_lock_dies_with_a_killed_writer(gallery_features: Path, synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats.npy"
    args = ["extract", str(synthetic_root / "query"), "-o", str(out), *SIZE]
    _kill_after(args, 3.0)
    done = _run(args)  # no stale lock: the next run just works
    assert done.returncode == 0, done.stderr
