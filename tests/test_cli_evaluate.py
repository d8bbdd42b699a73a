"""`reid-stra evaluate`: from feature files and from a model, table/JSON output, CMC plot, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.retrieval.features import FeatureMeta, save_features
from tests.helpers.galleries import TOY_MODEL_INFO


@pytest.fixture
def feature_files(tmp_path: Path) -> tuple[Path, Path]:
    """10 query people (camera 1) and 4 gallery images each (cameras 1-4) near their centre."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, 16))
    q_pids, g_pids = np.arange(1, 11), np.repeat(np.arange(1, 11), 4)
    qf = (centres[q_pids - 1] + 0.4 * rng.standard_normal((10, 16))).astype(np.float32)
    gf = (centres[g_pids - 1] + 0.4 * rng.standard_normal((40, 16))).astype(np.float32)
    query, gallery = tmp_path / "query.npy", tmp_path / "gallery.npy"
    meta = FeatureMeta.from_model_info(
        TOY_MODEL_INFO, [f"q{i}.jpg" for i in range(10)], pids=q_pids, camids=[1] * 10
    )
    save_features(query, qf, meta)
    g_meta = FeatureMeta.from_model_info(
        TOY_MODEL_INFO, [f"g{i}.jpg" for i in range(40)], pids=g_pids, camids=np.tile([1, 2, 3, 4], 10)
    )
    save_features(gallery, gf, g_meta)
    return query, gallery


def test_feature_files_json(cli, feature_files) -> None:
    query, gallery = feature_files
    result = cli(
        "evaluate", "--query-features", query, "--gallery-features", gallery, "--json", "--max-rank", "20"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["mode"] == "standard"
    assert (summary["num_queries"], summary["num_valid"], summary["num_invalid"]) == (10, 10, 0)
    assert 0.5 < summary["mAP"] <= 1.0 and summary["rank1"] <= summary["rank5"] <= summary["rank10"]
    assert len(summary["cmc"]) == 20
    assert summary["settings"]["metric"] == "euclidean"
    assert summary["source"]["model"] == "toy"


def test_feature_files_table_with_rerank_qe_and_plot(cli, feature_files, tmp_path: Path) -> None:
    query, gallery = feature_files
    plot = tmp_path / "out" / "cmc.png"
    result = cli(
        "evaluate", "--query-features", query, "--gallery-features", gallery, "--metric", "cosine",
        "--rerank", "--k1", "5", "--k2", "2", "--qe", "--qe-k", "3", "--mode", "market_official",
        "--cmc-plot", plot,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "original Market-1501 protocol" in result.stdout and "mAP" in result.stdout
    assert "k-reciprocal re-ranking (k1=5, k2=2" in result.stderr
    assert "distance: 1 - cosine similarity on L2-normalized features" in result.stderr
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 300


def test_market_official_differs_from_standard(cli, feature_files) -> None:
    query, gallery = feature_files
    args = ("evaluate", "--query-features", query, "--gallery-features", gallery, "--json")
    standard = json.loads(cli(*args).stdout)
    official = json.loads(cli(*args, "--mode", "market_official").stdout)
    assert official["mode"] == "market_official"
    assert official["mAP"] <= standard["mAP"]
    assert official["rank1"] == standard["rank1"]


@pytest.mark.slow
def test_model_on_dataset(cli, synthetic_root, tmp_path: Path) -> None:
    from reid_stra.models.build import build_model
    from reid_stra.models.weights import save_weights

    model = build_model("mobilenetv2", num_classes=0)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        input_size=(64, 32)
    )  # small images keep the test fast
    weights = save_weights(model, tmp_path / "mobilenet.pth")
    result = cli(
        "evaluate", "--data", "market1501", "--root", synthetic_root, "--weights", weights, "--device", "cpu",
        "--workers", "0", "--batch-size", "16", "--flip", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["source"]["model"] == "mobilenetv2" and summary["source"]["flip"] is True
    assert summary["num_queries"] == 18 and summary["num_valid"] > 0


def test_feature_files_without_ids_take_them_from_the_dataset(cli, synthetic_root, tmp_path: Path) -> None:
    from reid_stra.data.datasets import load_dataset

    dataset = load_dataset("market1501", synthetic_root, splits=("query", "gallery"))
    files = []
    for name, samples in (("q", dataset.query), ("g", dataset.gallery)):
        rng = np.random.default_rng(len(samples))
        feats = np.array([s.pid for s in samples])[:, None] + 0.1 * rng.standard_normal((len(samples), 16))
        meta = FeatureMeta.from_model_info(TOY_MODEL_INFO, [s.path for s in samples])  # no ids in the sidecar
        save_features(tmp_path / f"{name}.npy", feats.astype(np.float32), meta)
        files.append(tmp_path / f"{name}.npy")
    args = ("evaluate", "--query-features", files[0], "--gallery-features", files[1], "--json")
    missing = cli(*args)
    assert missing.exit_code == 2 and "has no person/camera ids" in missing.stderr
    result = cli(*args, "--data", "market1501", "--root", synthetic_root)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["num_valid"] == 18


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--metric", "manhattan"), "unknown distance metric 'manhattan'"),
        (("--mode", "official"), "unknown --mode 'official'"),
        (("--max-rank", "0"), "--max-rank 0"),
        (("--rerank", "--k2", "0"), "--k2 0"),
        (("--qe", "--qe-alpha", "-1"), "--qe-alpha -1"),
        (("--weights", "w.pth"), "--weights applies to extracting features"),
        (("--cmc-plot", "curve.jpg"), "ending in .png"),
        (("--device", "tpu"), "--device tpu"),
    ],
)
def test_bad_options_fail_with_one_line(cli, feature_files, extra: tuple, message: str) -> None:
    query, gallery = feature_files
    result = cli("evaluate", "--query-features", query, "--gallery-features", gallery, *extra)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_missing_inputs(cli, feature_files, tmp_path: Path) -> None:
    query, _ = feature_files
    result = cli("evaluate", "--query-features", query)
    assert result.exit_code == 2 and "--gallery-features is missing" in result.stderr
    result = cli("evaluate", "--query-features", query, "--gallery-features", tmp_path / "nope.npy")
    assert result.exit_code == 2 and "nope.npy" in result.stderr
    result = cli("evaluate", "--model", "mobilenetv2")
    assert result.exit_code == 2 and "--data is missing" in result.stderr


@pytest.mark.slow
def test_one_call_reports_a_model_on_several_datasets(cli, synthetic_root, tmp_path: Path) -> None:
    """In-domain and cross-domain side by side: each dataset its own protocol line, in the table,
    the JSON and the HTML report."""
    from reid_stra.data.synthetic import make_synthetic_dataset
    from reid_stra.models.build import build_model
    from reid_stra.models.weights import save_weights

    other = make_synthetic_dataset(
        tmp_path / "other_cameras", num_train_ids=2, num_test_ids=4, cameras=2, images_per_id_cam=2, seed=5
    )
    model = build_model("mobilenetv2", input_size=(64, 32))
    weights = save_weights(model, tmp_path / "mobilenet.pth")
    common = ["evaluate", "--data", "market1501", "--root", synthetic_root, "--root", other,
              "--weights", weights, "--device", "cpu", "--workers", "0", "--batch-size", "16"]  # fmt: skip
    result = cli(*common, "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [run["dataset"] for run in runs] == ["market1501 (market)", "market1501 (other_cameras)"]
    assert [run["num_queries"] for run in runs] == [18, 8]  # each dataset's own query set
    assert all(0.0 <= run["mAP"] <= 1.0 and run["source"]["model"] == "mobilenetv2" for run in runs)
    report = tmp_path / "report.html"
    table = cli(*common, "--report", report)
    assert table.exit_code == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "mobilenetv2" in line]
    assert len(rows) == 2 and "(market)" in rows[0] and "(other_cameras)" in rows[1]
    page = report.read_text()
    assert (
        "mobilenetv2 on market1501 (market)" in page and "mobilenetv2 on market1501 (other_cameras)" in page
    )


def test_several_datasets_need_matching_data_and_root(cli, synthetic_root) -> None:
    result = cli(
        "evaluate", "--data", "market1501", "--data", "dukemtmcreid", "--data", "msmt17",
        "--root", synthetic_root, "--root", synthetic_root,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --data given 3 times and --root 2 times; give one --root per --data (in the same order), "
        "or one --data for several --root"
    ]
