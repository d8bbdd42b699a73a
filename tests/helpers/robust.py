"""Robustness-suite helpers: what a clean failure looks like, shared tiny inputs, how to launch the CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# A subprocess running the CLI, without progress bars, on one thread.
LAUNCHER = [sys.executable, "-c", "from reid_stra.cli.app import main; main()"]
ENV = os.environ | {"REID_STRA_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
# Small inputs keep every model run cheap on a 2-core CPU.
SIZE = ["--height", "64", "--width", "32", "--workers", "0", "--device", "cpu"]


def assert_clean_error(result, *names: str) -> None:
    """Non-zero exit, one `error:` line naming each of ``names``, and never a traceback."""
    output = result.stdout + result.stderr
    assert result.exit_code != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


def debris(folder: Path) -> list[str]:
    """Half-written leftovers: atomic temp files and unfinished-extraction folders (locks are fine)."""
    found = [p for p in folder.rglob(".*.tmp")] + [p for p in folder.rglob("*.partial")]
    return sorted(str(p) for p in found)


def copy_features(source: Path, target: Path) -> Path:
    """Copy a feature file and its sidecar (to damage the copy)."""
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target
