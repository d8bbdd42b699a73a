"""`reid-stra train` as users call it: dry runs, option errors, refusing to lose work."""

from __future__ import annotations

import json
from pathlib import Path

TINY = ["--model", "mobilenetv2", "--pretrained", "none", "--height", "64", "--width", "32",
        "--batch-size", "8", "--workers", "0", "--device", "cpu"]  # fmt: skip


def test_dry_run_prints_resolved_config_and_writes_nothing(cli, synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli("train", "--root", synthetic_root, "--recipe", "strong", "--out", out, *TINY,
                 "--lr", "0.01", "--set", "triplet_soft=true", "--dry-run", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    config = report["config"]
    assert (config["lr"], config["batch_size"], config["triplet_soft"]) == (0.01, 8, True)  # options win
    assert (config["sampler"], config["neck"], config["triplet_weight"]) == (
        "identity",
        "bnneck",
        1.0,
    )  # recipe
    assert report["recipe"] == "strong" and report["data"]["splits"][0]["images"] == 48
    assert not out.exists()


def test_unknown_set_key_is_a_one_line_error(cli, synthetic_root: Path, tmp_path: Path) -> None:
    result = cli(
        "train", "--root", synthetic_root, "--out", tmp_path / "r", "--set", "bach_size=4", "--dry-run"
    )
    assert result.exit_code == 2
    assert "unknown option 'bach_size' (did you mean 'batch_size'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_root_and_bad_values(cli, tmp_path: Path) -> None:
    result = cli("train", "--out", tmp_path / "r", "--dry-run")
    assert result.exit_code == 2 and "--root" in result.stderr
    result = cli("train", "--root", tmp_path, "--out", tmp_path / "r", "--optimizer", "adma", "--dry-run")
    assert result.exit_code == 2 and "did you mean 'adam'" in result.stderr


def test_imagenet_offline_error_says_what_to_pass(
    cli, synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    import reid_stra.models.build as build
    from reid_stra.errors import ReidError

    def offline(model, name):
        raise ReidError(
            "pretrained=imagenet: cannot download https://download.pytorch.org/x.pth (no network)"
        )

    monkeypatch.setattr(build, "imagenet_weights", offline)
    args = [a for a in TINY if a not in ("--pretrained", "none")]
    result = cli(
        "train", "--root", synthetic_root, "--out", tmp_path / "r", *args, "--pretrained", "imagenet"
    )
    assert result.exit_code == 2
    assert "--pretrained FILE" in result.stderr and "--pretrained none" in result.stderr


def test_train_then_refuse_then_resume(cli, synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = [
        "train",
        "--root",
        synthetic_root,
        "--out",
        out,
        *TINY,
        "--eval-every",
        "0",
        "--fixbase-epochs",
        "0",
    ]
    result = cli(*common, "--epochs", "1")
    assert result.exit_code == 0, result.stderr
    assert "loss" in result.stdout and f"outputs in {out}" in result.stderr.replace("\n", "")
    again = cli(*common, "--epochs", "1")
    assert again.exit_code == 2 and "already holds a run" in again.stderr and "--resume" in again.stderr
    longer = cli("train", "--out", out, "--resume", "--epochs", "2", "--json")  # extend the finished run
    assert longer.exit_code == 0, longer.stderr
    summary = json.loads(longer.stdout)
    assert summary["epochs_done"] == 2 and summary["finished"]
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_a_short_run_clamps_the_recipes_fixbase_epochs_with_a_notice(
    cli, synthetic_root: Path, tmp_path: Path
) -> None:
    """`train --epochs 3` with the paper recipe (8 fixbase epochs) runs, training every layer in its
    last epoch; a --fixbase-epochs the user gave is never changed behind their back."""
    common = ["train", "--root", synthetic_root, "--out", tmp_path / "r", "--epochs", "3", "--dry-run"]
    result = cli(*common, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["fixbase_epochs"] == 2
    assert "the paper recipe's 8 is more than --epochs 3; training only the new layers for 2" in result.stderr
    explicit = cli(*common, "--fixbase-epochs", "5")
    assert explicit.exit_code == 2 and "--fixbase-epochs 5: more than --epochs 3" in explicit.stderr


def test_train_defaults_work_offline_and_agree_with_the_other_commands(
    cli, synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """No --model and no --pretrained on a machine without network or ImageNet cache: the shipped
    default model, started from its shipped re-ID weights, said in one notice (issue 28, item 9)."""
    import reid_stra.models.build as build
    from reid_stra.errors import ReidError
    from reid_stra.models import default_model_name

    def offline(model, name):
        raise ReidError("pretrained=imagenet: cannot download https://download.pytorch.org/x.pth (offline)")

    monkeypatch.setattr(build, "imagenet_weights", offline)
    out = tmp_path / "run"
    result = cli(
        "train", "--root", synthetic_root, "--output", out, "--height", "64", "--width", "32",
        "--batch-size", "8", "--workers", "0", "--device", "cpu", "--epochs", "1", "--eval-every", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "starting from the shipped re-ID weights mobilenetv2_market1501mini.pth" in result.stderr
    saved = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert saved["epoch"] == 1
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"] == default_model_name() == "mobilenetv2"
    assert config["workers"] == 0 and config["pretrained"] == "auto"


def test_train_workers_default_leaves_a_core_to_the_model(monkeypatch) -> None:
    import os

    from reid_stra.engine.config import TrainConfig

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert TrainConfig().workers == 1  # a 2-core machine: one decoding process, not 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    assert TrainConfig().workers == 8


def test_dataset_aliases_and_another_datasets_names_are_announced(
    cli, synthetic_root: Path, tmp_path: Path
) -> None:
    """`--data duke` on a folder of Market names used to be read as Duke without a word; an alias
    (`market`) is said out loud; the dataset's own name in any case stays quiet (issue 28, 9)."""
    base = ["train", "--root", synthetic_root, "--out", tmp_path / "r", *TINY, "--dry-run"]
    duke = cli(*base, "--data", "duke")
    assert duke.exit_code == 0, duke.stderr
    assert "dataset 'duke' read as dukemtmcreid (DukeMTMC-reID)" in duke.stderr
    assert "train file names do not look like dukemtmcreid's (0001_c2_f0046182.jpg)" in duke.stderr
    market = cli(*base, "--data", "Market-1501")
    assert market.exit_code == 0 and "warning" not in market.stderr, market.stderr
    alias = cli(*base, "--data", "market")
    assert "dataset 'market' read as market1501 (Market-1501)" in alias.stderr
    assert "do not look like" not in alias.stderr
