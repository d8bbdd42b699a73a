"""Progress when stderr is a file or a pipe (nohup, tee, CI, Slurm): plain lines while the work
runs, not one bar drawn at the end (issue 28)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reid_stra.utils.progress import _PlainLines


@pytest.mark.slow
def test_a_piped_training_prints_progress_before_its_first_epoch_ends(
    synthetic_root: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "REID_STRA_NO_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-c", "from reid_stra.cli.app import main; main()",
        "train", "--data", "market1501", "--root", str(synthetic_root),
        "--model", "mobilenetv2", "--pretrained", "none", "--epochs", "1", "--fixbase-epochs", "0",
        "--height", "64", "--width", "32", "--batch-size", "8", "--workers", "0", "--device", "cpu",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    progress = [
        i for i, line in enumerate(lines) if re.match(r"epoch 1/1: \d+/48 img \(\d+%\), .* img/s", line)
    ]
    summary = next(i for i, line in enumerate(lines) if line.startswith("epoch 1/1: loss"))
    assert progress and progress[0] < summary, result.stderr
    assert "eta" in lines[progress[0]] and "loss" in lines[progress[0]]  # rate, ETA and the loss
    assert "\x1b[" not in result.stderr  # no terminal control codes in a log file


def test_plain_lines_come_every_tenth_of_the_total(capsys) -> None:
    lines = _PlainLines("extracting", total=1000, unit="img")
    for _ in range(100):
        lines(10)
    printed = capsys.readouterr().err.splitlines()
    assert len(printed) == 11  # the first step, then each tenth
    assert printed[0].startswith("extracting: 10/1000 img (1%)") and printed[-1].startswith(
        "extracting: 1000/1000"
    )
