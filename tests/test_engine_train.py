"""Training runs end to end on the synthetic data: outputs, exact resume, kills, damaged files."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid_stra.engine.checkpoint import load_training_checkpoint
from reid_stra.engine.hooks import TrainerHook
from reid_stra.engine.trainer import plan_run, train
from reid_stra.errors import ReidError
from tests.helpers.kill_launcher import killed_launcher
from tests.helpers.training import TINY, last_weights, map_before_and_after_training, tiny_overrides


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every interrupted one must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference") / "run"
    summary = train(plan_run(out, recipe="paper", overrides=tiny_overrides(synthetic_root)))
    assert summary["finished"] and summary["epochs_done"] == 3
    return out


def test_run_writes_its_outputs(reference_run: Path) -> None:
    names = {p.name for p in reference_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "last.pth", "prev.pth", "best.pth", "model_final.pth"} <= names
    records = _metrics(reference_run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[0]["fixbase"] and not records[1]["fixbase"]
    for record in records:
        assert {"loss", "ce", "acc", "lr", "images_per_s", "epoch_time_s", "mAP", "rank1"} <= record.keys()
        assert record["images"] == 48
    checkpoint = load_training_checkpoint(reference_run / "last.pth")
    assert checkpoint["epoch"] == 3 and checkpoint["config"]["model"] == "mobilenetv2"
    assert checkpoint["best_mAP"] == max(r["mAP"] for r in records)
    # The exported model is what `reid-stra evaluate` loads: right model, training input size.
    from reid_stra.models import load_model

    model, info = load_model(weights=reference_run / "model_final.pth")
    assert info["model"] == "mobilenetv2" and info["cfg"].input_size == (64, 32)
    # config.yaml reproduces the run's config exactly.
    from reid_stra.engine.config import resolve_config

    assert resolve_config(None, reference_run / "config.yaml").to_dict() == checkpoint["config"]


@pytest.mark.slow
def test_training_checkpoints_load_like_the_final_model(
    cli, reference_run: Path, synthetic_root: Path
) -> None:
    """last.pth / best.pth name their model and input size: every command and the Embedder take
    them without --model, at the trained size (issue 29)."""
    import numpy as np

    from reid_stra import Embedder

    crops = sorted((synthetic_root / "query").glob("*.jpg"))[:5]
    final = Embedder(weights=reference_run / "model_final.pth").embed(crops)
    for name in ("last.pth", "best.pth"):
        embedder = Embedder(weights=reference_run / name)
        assert embedder.info["model"] == "mobilenetv2" and embedder.info["cfg"].input_size == (64, 32)
        assert "classifier.weight" in embedder.info["load_report"].skipped  # inference has no classifier
        if name == "last.pth":  # the last epoch's weights are the final model's
            np.testing.assert_allclose(embedder.embed(crops), final, atol=1e-5)
    out = reference_run.parent / "from_last.npy"
    result = cli("extract", *crops, "-o", out, "--weights", reference_run / "last.pth", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert np.load(out).shape == final.shape


class _RecordingHook(TrainerHook):
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.samples = 0
        self.model: torch.nn.Module | None = None

    def before_epoch(self, epoch: int) -> None:
        self.events.append(("before", epoch))

    def after_step(self, epoch: int, step: int, indices: torch.Tensor) -> None:
        self.events.append(("step", epoch, step))
        self.samples += len(indices)

    def after_epoch(self, epoch: int, record: dict, model: torch.nn.Module) -> None:
        self.events.append(("after", epoch, record["epoch"]))
        self.model = model


def test_fixbase_epoch_trains_only_new_layers(synthetic_root: Path, tmp_path: Path) -> None:
    from reid_stra.models import build_model

    out = tmp_path / "run"
    calls = _RecordingHook()
    train(
        plan_run(out, overrides=tiny_overrides(synthetic_root, epochs=1, eval_every=0)),
        stop_after_epochs=1,
        hooks=[calls],
    )
    # The hooks see every step and epoch, in order (what a test's or a user's callback relies on).
    batches = _metrics(out)[0]["images"] // TINY["batch_size"]
    assert calls.events == [("before", 0), *(("step", 0, b) for b in range(batches)), ("after", 0, 1)]
    assert calls.samples == _metrics(out)[0]["images"] and calls.model is not None
    trained = last_weights(out)
    torch.manual_seed(3)  # the run seeds its model init with --seed
    initial = build_model("mobilenetv2", num_classes=8).state_dict()
    changed = {key for key in trained if not torch.equal(trained[key], initial[key])}
    assert changed, "nothing was trained"
    new = tuple(f"features.{i}." for i in range(14, 19)) + ("classifier.",)
    assert all(key.startswith(new) for key in changed), sorted(changed)[:5]


def test_resume_equals_uninterrupted_run(synthetic_root: Path, tmp_path: Path, reference_run: Path) -> None:
    out = tmp_path / "run"
    first = train(
        plan_run(out, recipe="paper", overrides=tiny_overrides(synthetic_root)), stop_after_epochs=1
    )
    assert not first["finished"] and first["epochs_done"] == 1 and not (out / "model_final.pth").exists()
    notes: list[str] = []
    summary = train(plan_run(out, resume=True), notice=notes.append)
    assert summary["finished"]
    assert any("resuming from" in note and "epoch 1 of 3" in note for note in notes)
    _assert_same_weights(last_weights(out), last_weights(reference_run))
    assert [_untimed(r) for r in _metrics(out)] == [_untimed(r) for r in _metrics(reference_run)]


def _untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("images_per_s", "epoch_time_s", "data_wait_s")}


def test_truncated_last_checkpoint_falls_back_to_previous(tmp_path: Path, reference_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    data = (out / "last.pth").read_bytes()
    (out / "last.pth").write_bytes(data[: len(data) // 2])  # as if the disk lost the end of it
    notes: list[str] = []
    summary = train(plan_run(out, resume=True), notice=notes.append)
    assert any("skipping" in n and "last.pth" in n for n in notes), notes
    assert any("resuming from" in n and "prev.pth" in n for n in notes), notes
    assert summary["finished"] and (out / "last.pth.damaged").exists()
    _assert_same_weights(last_weights(out), last_weights(reference_run))  # epoch 3 redone identically


def test_no_readable_checkpoint_is_a_clear_error(tmp_path: Path, reference_run: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    for name in ("last.pth", "prev.pth"):
        (out / name).write_bytes(b"not a checkpoint")
    with pytest.raises(ReidError, match="no readable checkpoint.*--overwrite"):
        plan_run(out, resume=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_killed_run_resumes_to_the_same_weights(
    synthetic_root: Path, tmp_path: Path, reference_run: Path, sig: str
) -> None:
    """SIGKILL loses the epoch in progress; SIGTERM (and Ctrl-C) also says so in one line."""
    out = tmp_path / "run"
    args = ["train", "--data", "market1501", "--recipe", "paper", "--out", str(out)]
    for key, value in tiny_overrides(synthetic_root).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    env = os.environ | {"REID_STRA_NO_PROGRESS": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    launcher = [sys.executable, "-c", "import sys; from reid_stra.cli.app import main; main()"]
    batches = _metrics(reference_run)[0]["images"] // TINY["batch_size"]
    # Stopped at the first batch of epoch 2, whatever the machine's speed.
    stop = killed_launcher(f"train.batch@{batches + 1}", sig)
    killed = subprocess.run(stop + args, env=env, capture_output=True, text=True, timeout=600)
    if sig == "KILL":
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        resume = ["train", "--out", str(out), "--resume", "--json"]
    else:
        assert killed.returncode == 128 + signal.SIGTERM, killed.stderr
        last = killed.stderr.strip().splitlines()[-1]
        assert last.startswith("interrupted: stopped in epoch 2/3; epochs 1-1 are kept in"), killed.stderr
        assert "Traceback" not in killed.stderr
        resume = shlex.split(last.split("continue with: ", 1)[1])[1:] + ["--json"]
        assert resume[-2] == "--resume" and resume[: len(args)] == args
    assert load_training_checkpoint(out / "last.pth")["epoch"] == 1
    resumed = subprocess.run(launcher + resume, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["finished"] is True
    _assert_same_weights(last_weights(out), last_weights(reference_run))


def test_existing_run_is_never_overwritten_silently(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(ReidError, match="already holds a run.*--resume.*--overwrite"):
        plan_run(out, overrides=tiny_overrides(synthetic_root))
    with pytest.raises(ReidError, match="choose one"):
        plan_run(out, overrides=tiny_overrides(synthetic_root), resume=True, overwrite=True)
    summary = train(
        plan_run(out, overrides=tiny_overrides(synthetic_root, eval_every=0), overwrite=True),
        stop_after_epochs=1,
    )
    assert summary["epochs_done"] == 1 and _metrics(out)[0]["epoch"] == 1 and len(_metrics(out)) == 1


def test_resume_without_checkpoint_starts_fresh(synthetic_root: Path, tmp_path: Path) -> None:
    plan = plan_run(tmp_path / "run", overrides=tiny_overrides(synthetic_root), resume=True)
    assert plan.checkpoint is None and any("starting a fresh run" in n for n in plan.notes)
    # ... but never over a finished run whose checkpoints were deleted (its model would be lost).
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model_final.pth").write_bytes(b"weights")
    with pytest.raises(ReidError, match="no checkpoint to resume from; use --overwrite"):
        plan_run(tmp_path / "run", overrides=tiny_overrides(synthetic_root), resume=True)


def test_second_training_into_the_same_folder_fails(synthetic_root: Path, tmp_path: Path) -> None:
    from reid_stra.utils.atomic import exclusive_lock

    out = tmp_path / "run"
    plan = plan_run(out, overrides=tiny_overrides(synthetic_root))
    with exclusive_lock(out / "last.pth"), pytest.raises(ReidError, match="another reid-stra process"):
        train(plan)
    assert not (out / "metrics.jsonl").exists()


def test_worker_seeding_repeats_augmentation_after_restart(synthetic_root: Path) -> None:
    """With workers > 0, epoch e's batches (augmentation included) do not depend on earlier epochs."""
    from reid_stra.data import load_dataset
    from reid_stra.data.loading import build_train_loader
    from reid_stra.data.transforms import build_train_transform
    from reid_stra.engine.builders import seed_loader_epoch

    samples = load_dataset("market1501", synthetic_root).train
    transform = build_train_transform((32, 16), random_erasing=1.0)

    def epoch_batches(loader, epoch: int) -> list[torch.Tensor]:
        seed_loader_epoch(loader, seed=5, epoch=epoch, rank=0)
        return [images for images, *_ in loader]

    def new_loader():
        return build_train_loader(samples, transform, batch_size=16, sampler="random", workers=2, seed=5)

    continued = new_loader()
    epoch_batches(continued, 0)
    after_epoch0 = epoch_batches(continued, 1)
    restarted = epoch_batches(new_loader(), 1)
    assert all(torch.equal(a, b) for a, b in zip(after_epoch0, restarted, strict=True))
    assert not torch.equal(after_epoch0[0], epoch_batches(new_loader(), 2)[0])


@pytest.mark.slow
def test_mAP_rises_well_above_the_untrained_model(shared_dir: Path, tmp_path: Path) -> None:
    """ImageNet-initialized MobileNetV2 (the paper's recipe) learns the synthetic identities."""
    before, after = map_before_and_after_training(shared_dir, tmp_path)
    assert after > before + 0.25 and after > 0.45, (before, after)


def test_a_run_validated_on_held_out_ids_tests_once_at_the_end(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(
        plan_run(out, overrides=tiny_overrides(synthetic_root, epochs=2, fixbase_epochs=0, val_ids=3))
    )
    # 8 training ids, 3 held out: the classifier has 5 classes.
    classifier = [v for k, v in last_weights(out).items() if k.endswith("classifier.weight")]
    assert [w.shape[0] for w in classifier] == [5]
    assert all("mAP" in record for record in _metrics(out))  # validation every epoch, on the holdout
    test = json.loads((out / "test.json").read_text())
    assert summary["test"] == test and 0.0 <= test["mAP"] <= 1.0 and "rank1" in test
    # Without a holdout there is no separate test evaluation.
    plain = train(
        plan_run(tmp_path / "plain", overrides=tiny_overrides(synthetic_root, epochs=1, fixbase_epochs=0))
    )
    assert plain["test"] is None and not (tmp_path / "plain" / "test.json").exists()


def test_a_dead_data_worker_says_what_was_kept_and_how_to_resume(
    cli, synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """A DataLoader worker killed from outside (the OOM killer, a stray `pkill`) makes torch raise a
    RuntimeError in the main process: the run ends with one line naming what was kept and --resume,
    and the resume finishes."""
    from reid_stra.data.loading import worker_death
    from reid_stra.engine.trainer import TrainingRun

    assert worker_death(RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly"))
    assert worker_death(RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "))
    assert worker_death(RuntimeError("CUDA out of memory")) is None
    train_epoch = TrainingRun._train_epoch

    def dies_in_epoch_two(self, epoch: int):
        if epoch == 1:
            raise RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")
        return train_epoch(self, epoch)

    monkeypatch.setattr(TrainingRun, "_train_epoch", dies_in_epoch_two)
    out = tmp_path / "run"
    args = ["train", "--data", "market1501", "--recipe", "paper", "--out", out]
    for key, value in tiny_overrides(synthetic_root, epochs=2).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    died = cli(*args)
    assert died.exit_code != 0 and "Traceback" not in died.stderr
    line = died.stderr.strip().splitlines()[-1]
    assert "DataLoader worker (pid(s) 4242) exited unexpectedly" in line
    assert "epochs 1-1 are kept in" in line and line.endswith("rerun the same command with --resume")
    monkeypatch.setattr(TrainingRun, "_train_epoch", train_epoch)
    resumed = cli("train", "--out", out, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["finished"] is True
