"""Bad option values and broken dataset folders: one clear line naming the option or folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from reid_stra.errors import ReidError
from reid_stra.metrics.rank import evaluate_rank
from tests.helpers.robust import SIZE, assert_clean_error, debris


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch-size", "0"], "--batch-size 0"),
        (["--batch-size", "-4"], "--batch-size -4"),
        (["--height", "0"], "--height"),
        (["--width", "-5"], "--width"),
        (["--workers", "-1"], "--workers -1"),
        (["--model", "stra_mobilenet"], "did you mean 'stra_mobilenetv2'"),
    ],
)
def test_bad_extract_options(cli, synthetic_root: Path, tmp_path: Path, args, named) -> None:
    out = tmp_path / "feats.npy"
    result = cli("extract", synthetic_root / "query", "-o", out, *SIZE, *args)
    assert_clean_error(result, named)
    assert not out.exists() and debris(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--kind", "hsnw"], "did you mean 'hnsw'"),
        (["--kind", "ivf", "--nlist", "0"], "--nlist 0"),
        (["--kind", "ivf", "--nlist", "100000"], "--nlist 100000"),
        (["--kind", "hnsw", "--m", "0"], "--m 0"),
        (["--kind", "hnsw", "--pca", "0"], "--pca 0"),
        (["--kind", "hnsw", "--ef-search", "-1"], "--ef-search -1"),
    ],
)
def test_bad_index_options(cli, gallery_features: Path, tmp_path: Path, args, named) -> None:
    features = tmp_path / "g.npy"
    shutil.copy(gallery_features, features)
    shutil.copy(gallery_features.with_suffix(".json"), tmp_path / "g.json")
    result = cli("index", "build", features, *args)
    assert_clean_error(result, named)
    assert not (tmp_path / "g.faiss").exists() and debris(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--top-k", "0"], "--top-k 0"),
        (["--top-k", "-3"], "--top-k -3"),
        (["--index", "ivf", "--nprobe", "0"], "--nprobe 0"),
        (["--ef-search", "0"], "--ef-search 0"),
        (["--index", "bogus"], "'bogus'"),
    ],
)
def test_bad_search_options(cli, gallery_features: Path, args, named) -> None:
    result = cli("search", "--query-features", gallery_features, "--gallery", gallery_features, *args)
    assert_clean_error(result, named)


def test_top_k_larger_than_the_gallery_shows_all(cli, gallery_features: Path) -> None:
    import json

    args = ["--gallery", gallery_features, "--top-k", "999", "--json"]
    result = cli("search", "--query-features", gallery_features, *args)
    assert result.exit_code == 0, result.stderr
    count = json.loads(gallery_features.with_suffix(".json").read_text())["count"]
    assert {len(r["matches"]) for r in json.loads(result.stdout)["results"]} == {count}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "stra_mobilenetv3"], "did you mean 'stra_mobilenetv2'"),
        (["--data", "market15"], "did you mean 'market1501'"),
        (["--epochs", "0"], "--epochs 0"),
        (["--batch-size", "-1"], "--batch-size -1"),
        (["--lr", "-1"], "--lr"),
        (["--height", "0"], "--height 0"),
        (["--num-instances", "0"], "--num-instances 0"),
    ],
)
def test_bad_train_options(cli, synthetic_root: Path, tmp_path: Path, args, named) -> None:
    out = tmp_path / "run"
    base = [
        "--data",
        "market1501",
        "--root",
        synthetic_root,
        "--model",
        "mobilenetv2",
        "--pretrained",
        "none",
    ]
    result = cli("train", *base, "--out", out, *args)
    assert_clean_error(result, named)
    assert not (out / "last.pth").exists() and not (out / "config.yaml").exists()


# ----------------------------------------------------------------------------------- datasets


def _broken(tmp_path: Path, synthetic_root: Path, kind: str) -> Path:
    root = tmp_path / "market"
    shutil.copytree(synthetic_root, root)
    if kind == "missing-split":
        shutil.rmtree(root / "query")
    elif kind == "wrong-folder-name":
        (root / "bounding_box_test").rename(root / "gallery")
    elif kind == "ids-do-not-parse":
        (root / "query" / "person_a_cam1.jpg").write_bytes(
            (sorted((root / "query").glob("*.jpg"))[0]).read_bytes()
        )
    elif kind == "empty-split":
        for path in (root / "query").iterdir():
            path.unlink()
    return root


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("missing-split", "query"),
        ("wrong-folder-name", "bounding_box_test"),
        ("ids-do-not-parse", "person_a_cam1.jpg"),
        ("empty-split", "query"),
    ],
)
def test_broken_dataset_folder(cli, synthetic_root: Path, tmp_path: Path, kind, named) -> None:
    root = _broken(tmp_path, synthetic_root, kind)
    assert_clean_error(cli("datasets", "--data", "market1501", "--root", root), named)


def test_query_ids_absent_from_gallery_and_single_camera() -> None:
    rng = np.random.default_rng(0)
    distmat = rng.random((3, 5))
    g_pids, g_cams = np.array([1, 1, 2, 2, 3]), np.array([2, 2, 2, 2, 2])
    # Query id 9 has no gallery match: reported as invalid, never counted as a miss.
    result = evaluate_rank(distmat, np.array([1, 2, 9]), g_pids, np.array([1, 1, 1]), g_cams, max_rank=5)
    assert result["num_valid"] == 2 and result["num_invalid"] == 1
    # A single camera: every true match shares the query's camera, so nothing can be evaluated.
    with pytest.raises(ReidError):
        evaluate_rank(distmat, np.array([1, 2, 3]), g_pids, np.array([2, 2, 2]), g_cams, max_rank=5)
