"""`reid-stra demo-data` and `reid-stra datasets` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path


def test_demo_data_writes_a_market_dataset(cli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = [
        "demo-data",
        out,
        "--train-ids",
        "3",
        "--test-ids",
        "2",
        "--cameras",
        "2",
        "--height",
        "64",
        "--width",
        "32",
    ]
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["root"] == str(out) and report["data"] == "market1501"
    assert [(r["split"], r["ids"], r["images"]) for r in report["splits"]] == [
        ("train", 3, 24),
        ("query", 2, 4),
        ("gallery", 2, 14),
    ]
    assert (out / "bounding_box_train").is_dir()
    again = cli(*args, "--seed", "1")  # other data in the same folder needs --force
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli(*args, "--seed", "1", "--force").exit_code == 0
    table = cli(*args, "--seed", "1")  # identical request: reused, summary printed
    assert table.exit_code == 0 and "query" in table.stdout


def test_datasets_summary_and_warnings(cli, synthetic_root: Path) -> None:
    result = cli("datasets", "--data", "market1501", "--root", synthetic_root, "--verify", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["data"] == "market1501" and report["warnings"] == [] and report["skipped"] == []
    assert {r["split"]: (r["ids"], r["images"], r["cameras"]) for r in report["splits"]} == {
        "train": (8, 48, 3),
        "query": (6, 18, 3),
        "gallery": (6, 21, 3),
    }
    table = cli("datasets", "--data", "market1501", "--root", synthetic_root)
    assert table.exit_code == 0 and "gallery" in table.stdout and "cameras" in table.stdout


def test_datasets_lists_supported_names(cli) -> None:
    result = cli("datasets", "--json")
    assert result.exit_code == 0
    names = {d["name"]: d for d in json.loads(result.stdout)}
    assert {"market1501", "dukemtmcreid", "msmt17", "cuhk03", "folder"} <= set(names)
    assert "variant" in names["cuhk03"]["options"]
    assert "bounding_box_train" in names["market1501"]["layout"]


def test_datasets_errors_are_one_line(cli, tmp_path: Path) -> None:
    missing = cli("datasets", "--data", "market1501", "--root", tmp_path / "nowhere")
    assert (
        missing.exit_code == 2
        and missing.stderr.startswith("error: --root")
        and "Traceback" not in missing.stderr
    )
    unknown = cli("datasets", "--data", "markt1501", "--root", tmp_path)
    assert unknown.exit_code == 2 and "did you mean 'market1501'" in unknown.stderr
    no_root = cli("datasets", "--data", "market1501")
    assert no_root.exit_code == 2 and "--root is missing" in no_root.stderr
    bad_opt = cli("datasets", "--data", "cuhk03", "--root", tmp_path, "--data-opt", "colour=red")
    assert bad_opt.exit_code == 2 and "valid: variant" in bad_opt.stderr
