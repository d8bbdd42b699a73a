"""The same `reid-stra train` command under torchrun: 2 CPU processes, gloo backend, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reid_stra.engine.checkpoint import load_training_checkpoint
from tests.helpers import sample_log_launcher
from tests.helpers.sample_log_launcher import tensors_digest


def _command(samples: Path) -> list[str]:
    """torchrun running the CLI through the sample recorder (``FOLDER/epochE_rankR.json``)."""
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return [*run, str(Path(sample_log_launcher.__file__).resolve()), str(samples), "--"]


@pytest.mark.slow
def test_two_process_gloo_training(synthetic_root: Path, tmp_path: Path) -> None:
    from reid_stra.data import load_dataset
    from reid_stra.data.samplers import RandomIdentitySampler
    from reid_stra.models import build_model

    out = tmp_path / "run"
    args = [
        "train", "--data", "market1501", "--root", str(synthetic_root), "--recipe", "strong",
        "--model", "mobilenetv2", "--pretrained", "none", "--height", "64", "--width", "32",
        "--batch-size", "16", "--num-instances", "4", "--epochs", "2", "--fixbase-epochs", "1",
        "--warmup-epochs", "1", "--eval-every", "2", "--workers", "0", "--device", "cpu", "--seed", "3",
        "--out", str(out), "--json",
    ]  # fmt: skip
    env = os.environ | {"REID_STRA_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    samples = tmp_path / "samples"
    result = subprocess.run(_command(samples) + args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # printed once, by rank 0
    assert summary["finished"] and summary["final"]["images"] == 16 * 2  # 2 global batches of 16
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    pids = [s.pid for s in load_dataset("market1501", synthetic_root).train]
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=3, rank=0, world_size=2)
    for epoch in (1, 2):
        ranks = [json.loads((samples / f"epoch{epoch}_rank{r}.json").read_text()) for r in (0, 1)]
        # Every sample of the epoch's list seen exactly once, by exactly one rank.
        expected = [i for batch in sampler.global_batches(epoch - 1) for i in batch]
        seen = ranks[0]["indices"] + ranks[1]["indices"]
        assert sorted(seen) == sorted(expected) and len(set(seen)) == len(seen)
        assert ranks[0]["indices"] == [i for batch in sampler.rank_batches(epoch - 1) for i in batch]
        # Identical weights on both ranks after every epoch (fixbase phase and full phase).
        assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]

    # ... and the checkpoint rank 0 wrote holds exactly those weights.
    names = {name for name, _ in build_model("mobilenetv2", num_classes=8, neck="bnneck").named_parameters()}
    state = load_training_checkpoint(out / "last.pth")["state_dict"]
    assert tensors_digest({k: v for k, v in state.items() if k in names}) == ranks[0]["params_sha256"]
