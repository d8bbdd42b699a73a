"""Ctrl-C (SIGINT) and SIGTERM: one line saying what was kept and the command that continues."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reid_stra.retrieval.features import load_features
from tests.helpers.kill_launcher import KILL_MARK, killed_launcher

LAUNCHER = [sys.executable, "-c", "from reid_stra.cli.app import main; main()"]
ENV = os.environ | {"REID_STRA_NO_PROGRESS": "1"}


def _ctrl_c_reaches_the_child() -> None:
    """A suite started in the background (``nohup make test &``) has SIGINT ignored, and Python
    keeps an inherited SIG_IGN: restore the disposition a foreground terminal gives, so Ctrl-C
    (SIGINT) means in the child what it means for a user."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _extract(synthetic_root: Path, out: Path, *extra: str, stop: tuple[str, str] | None = None):
    args = ["extract", str(synthetic_root / "bounding_box_test"), "-o", str(out), "--batch-size", "4",
            "--workers", "0", "--device", "cpu", "--height", "64", "--width", "32", *extra]  # fmt: skip
    return subprocess.run(
        (killed_launcher(*stop) if stop else LAUNCHER) + args,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_ctrl_c_reaches_the_child,
    )


def _lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(KILL_MARK)]


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [("INT", 130), ("TERM", 143)])
def test_stopped_extraction_keeps_finished_batches_and_says_how_to_continue(
    synthetic_root: Path, tmp_path: Path, sig: str, code: int
) -> None:
    out = tmp_path / "gallery.npy"
    # The hook stops the run while its third batch of 4 is in hand: two batches are finished.
    stopped = _extract(synthetic_root, out, stop=("extract.batch@3", sig))
    assert stopped.returncode == code, stopped.stderr
    last = _lines(stopped.stderr)[-1]
    assert last.startswith("interrupted: extraction stopped; 8 of 23 images' features are kept in"), last
    assert "Traceback" not in stopped.stderr and not out.exists()
    again = shlex.split(last.split("continue with: ", 1)[1])
    assert again[:2] == ["reid-stra", "extract"] and again[-1] == "--resume"
    resumed = subprocess.run(LAUNCHER + again[1:], env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 8 of 23 images already extracted" in resumed.stderr
    whole = _extract(synthetic_root, tmp_path / "whole.npy")
    assert whole.returncode == 0, whole.stderr
    np.testing.assert_array_equal(load_features(out)[0], load_features(tmp_path / "whole.npy")[0])


@pytest.mark.slow
def test_a_stop_before_any_batch_finished_leaves_nothing_behind(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "gallery.npy"
    stopped = _extract(synthetic_root, out, stop=("extract.batch@1", "INT"))
    assert stopped.returncode == 130, stopped.stderr
    assert _lines(stopped.stderr)[-1] == (
        "interrupted: extraction stopped before any of 23 images finished; nothing was written"
    )
    assert sorted(os.listdir(tmp_path)) == []  # no partial folder, no lock, no output


def test_chunk_size_is_checked_before_any_work(cli, synthetic_root: Path, tmp_path: Path) -> None:
    result = cli("extract", synthetic_root / "query", "-o", tmp_path / "q.npy", "--chunk-size", "0")
    assert result.exit_code == 2 and result.stderr.startswith("error: --chunk-size 0: must be at least 1")
    assert not any(tmp_path.iterdir())
