"""kill -9 during `reid-stra train` at seeded random points of its progress (mid-epoch, checkpoint
writes), chosen through the kill hook, never by a clock:
every restart with `--resume` continues from the last complete checkpoint, no checkpoint is ever
corrupt, and the finished run has exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from reid_stra.engine.checkpoint import load_training_checkpoint
from reid_stra.engine.trainer import plan_run, train
from tests.helpers.kill_launcher import KILL_MARK, killed_launcher
from tests.helpers.robust import ENV, LAUNCHER
from tests.helpers.training import TINY


def _train_env() -> dict[str, str]:
    """The subprocess must use as many threads as this process's reference run (read when the
    test runs, after the suite set its thread count): float reductions depend on it."""
    return {**ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _cli_args(root: Path, out: Path) -> list[str]:
    args = ["train", "--data", "market1501", "--recipe", "paper", "--out", str(out), "--resume", "--json"]
    for key, value in {"root": str(root), **TINY}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _killed_at(out: Path, root: Path, point: str) -> None:
    """Run the CLI killed at ``point``; assert it died there by SIGKILL, files intact."""
    process = subprocess.run(
        killed_launcher(point) + _cli_args(root, out),
        env=_train_env(),
        capture_output=True,
        timeout=600,  # only a guard against a hang: the kill point decides what is exercised
    )
    stderr = process.stderr.decode()
    assert process.returncode == -signal.SIGKILL, (
        f"kill at {point} did not land (exit {process.returncode}): {stderr}"
    )
    assert f"{KILL_MARK} " in stderr and f"={point})" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    for name in ("last.pth", "prev.pth"):  # old or new version, never a torn file
        if (out / name).exists():
            load_training_checkpoint(out / name)


@pytest.mark.slow
def test_train_killed_at_random_moments_resumes_to_the_uninterrupted_weights(
    synthetic_root: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    train(plan_run(reference, recipe="paper", overrides={"root": str(synthetic_root), **TINY}))
    expected = load_training_checkpoint(reference / "last.pth")["state_dict"]
    batches = (
        json.loads((reference / "metrics.jsonl").read_text().splitlines()[0])["images"] // TINY["batch_size"]
    )
    assert batches >= 2

    out = tmp_path / "run"
    rng = random.Random(5)
    # Each restart is a new process, so counts start again at its (resumed) start.
    points = [
        f"train.batch@{rng.randint(1, batches)}",  # mid epoch 1: nothing saved yet, restart afresh
        "atomic.before_replace:last.pth@1",  # mid first checkpoint write (metrics already logged)
        "atomic.before_replace:last.pth@2",  # epoch 1 saved: mid epoch 2's write (last -> prev done)
        f"train.batch@{rng.randint(1, batches)}",  # mid the next epoch after resuming from prev.pth
        "atomic.before_replace:metrics.jsonl@1",  # between a finished epoch and its checkpoint
    ]
    for point in points:
        _killed_at(out, synthetic_root, point)
    finished = subprocess.run(
        LAUNCHER + _cli_args(synthetic_root, out), env=_train_env(), capture_output=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr.decode()
    assert b"Traceback" not in finished.stderr
    assert json.loads(finished.stdout)["finished"] is True
    assert not list(out.glob(".*.tmp")), "a killed write's temporary file was left behind"

    got = load_training_checkpoint(out / "last.pth")["state_dict"]
    different = [key for key in expected if not torch.equal(expected[key], got[key])]
    assert not different, f"{len(different)} tensors differ after kill/resume, e.g. {different[:3]}"


def test_resume_after_a_kill_before_the_first_checkpoint_starts_afresh(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """Killed after writing config.yaml but before epoch 1 ended: nothing to lose, so --resume restarts."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("# written at start-up, then the process was killed\n")
    notes: list[str] = []
    plan = plan_run(out, recipe="paper", overrides={"root": str(synthetic_root), **TINY}, resume=True)
    notes.extend(plan.notes)
    assert plan.checkpoint is None
    assert any("starting a fresh run" in note for note in notes)
