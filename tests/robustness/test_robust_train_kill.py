"""kill -9 during `reid-stra train` at random moments (start-up, mid-epoch, checkpoint writes):
every restart with `--resume` continues from the last complete checkpoint, no checkpoint is ever
corrupt, and the finished run has exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from reid_stra.engine.checkpoint import load_training_checkpoint
from reid_stra.engine.trainer import plan_run, train
from tests.robustness.test_robust_kill import ENV, LAUNCHER
from tests.test_engine_train import TINY

# The subprocess must use as many threads as this process: float reductions depend on it.
TRAIN_ENV = {**ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _cli_args(root: Path, out: Path) -> list[str]:
    args = ["train", "--data", "market1501", "--recipe", "paper", "--out", str(out), "--resume", "--json"]
    for key, value in {"root": str(root), **TINY}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.mark.slow
def test_train_killed_at_random_moments_resumes_to_the_uninterrupted_weights(
    synthetic_root: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    started = time.monotonic()
    train(plan_run(reference, recipe="paper", overrides={"root": str(synthetic_root), **TINY}))
    train_s = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(LAUNCHER + ["--version"], env=TRAIN_ENV, capture_output=True, timeout=120)
    startup_s = time.monotonic() - started
    expected = load_training_checkpoint(reference / "last.pth")["state_dict"]

    out = tmp_path / "run"
    rng = random.Random(5)
    kills = 0
    for attempt in range(4):  # kill the first three runs at random moments, let the fourth finish
        process = subprocess.Popen(
            LAUNCHER + _cli_args(synthetic_root, out),
            env=TRAIN_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Anywhere from start-up to the end of training (checkpoint writes included).
            limit = rng.uniform(0.4, 1.0) * (startup_s + train_s) if attempt < 3 else 600
            stdout, stderr = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=60)
        if process.returncode == -signal.SIGKILL:
            kills += 1
            for name in ("last.pth", "prev.pth"):  # old or new version, never a torn file
                if (out / name).exists():
                    load_training_checkpoint(out / name)
            continue
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
        assert json.loads(stdout)["finished"] is True
        break
    else:
        pytest.fail("the run did not finish after its restarts")

    got = load_training_checkpoint(out / "last.pth")["state_dict"]
    assert kills >= 1, "no kill landed: the test did not exercise an interruption"
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
