"""`torchrun --nproc_per_node N reid-stra extract` (issue 27, item 1): the images split over N
processes (gloo on CPU here), the same file as one process, resumable with any number of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.kill_launcher import KILL_MARK, kill_arguments

SMALL = (64, 32)
# Chunks of one batch of 4: 48 training crops are 12 chunks, so both ranks get several.
OPTIONS = ["--backend", "pytorch", "--workers", "0", "--batch-size", "4", "--chunk-size", "4", "--json"]


def _cli(kill: str | None = None) -> list[str]:
    if kill:
        return [sys.executable, *kill_arguments(kill)]
    script = Path(sys.executable).parent / "reid-stra"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from reid_stra.cli.app import main; main()"]
    )


def _torchrun(processes: int, kill: str | None = None) -> list[str]:
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    if kill:  # every rank runs the CLI through the kill launcher (a Python script)
        return [*run, *kill_arguments(kill)]
    script = Path(sys.executable).parent / "reid-stra"
    return [*run, "--no-python", str(script)]


def _extract(
    launcher: list[str], weights: Path, crops: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # what torchrun gives each process
    command = [*launcher, "extract", str(crops), "--weights", str(weights), "-o", str(out), *OPTIONS, *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, calibrated_checkpoint, synthetic_root: Path):
    if not (Path(sys.executable).parent / "reid-stra").exists():
        pytest.skip("the reid-stra script is not installed beside this Python")
    folder = tmp_path_factory.mktemp("dist_extract")
    weights = calibrated_checkpoint(folder / "small.pth", seed=0, input_size=SMALL)
    crops = synthetic_root / "bounding_box_train"
    reference = folder / "one_process.npy"
    single = _extract(_cli(), weights, crops, reference)
    assert single.returncode == 0, single.stderr
    return weights, crops, reference


def _same_file(a: Path, b: Path) -> None:
    assert np.array_equal(np.load(a), np.load(b))  # bit for bit
    meta_a, meta_b = (json.loads(p.with_suffix(".json").read_text()) for p in (a, b))
    assert meta_a["paths"] == meta_b["paths"]
    assert meta_a["checksum"] == meta_b["checksum"]


@pytest.mark.slow
def test_two_processes_write_the_one_process_file(setup, tmp_path: Path) -> None:
    weights, crops, reference = setup
    out = tmp_path / "two.npy"
    result = _extract(_torchrun(2), weights, crops, out)
    assert result.returncode == 0, result.stderr[-2000:]
    _same_file(out, reference)
    report = json.loads(result.stdout)  # one document: rank 0 reports, rank 1 stays quiet
    assert report["processes"] == 2 and report["images_per_process"] == [24, 24]  # 12 chunks split
    assert not (tmp_path / "two.npy.partial").exists()


@pytest.mark.slow
def test_a_killed_rank_is_resumed_by_one_process_and_one_process_by_two(setup, tmp_path: Path) -> None:
    weights, crops, reference = setup
    out = tmp_path / "resumed.npy"
    killed = _extract(_torchrun(2, kill="extract.batch:rank1@2"), weights, crops, out)
    assert killed.returncode != 0
    assert f"{KILL_MARK} extract.batch:rank1 #2" in killed.stderr
    assert not out.exists() and (tmp_path / "resumed.npy.partial").is_dir()
    resumed = _extract(_cli(), weights, crops, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["reused"] >= 4  # rank 1's first chunk at least, kept through the kill
    assert report["reused"] + report["extracted"] == 48
    _same_file(out, reference)

    # The other way round: one process stopped, two finish it.
    other = tmp_path / "other.npy"
    stopped = _extract(_cli(kill="extract.batch@5"), weights, crops, other)
    assert stopped.returncode != 0 and KILL_MARK in stopped.stderr
    finished = _extract(_torchrun(2), weights, crops, other, "--resume")
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    assert report["reused"] >= 16 and sum(report["images_per_process"]) == 48 - report["reused"]
    assert min(report["images_per_process"]) > 0
    _same_file(other, reference)
