"""`reid-stra extract`, `search` and `index` end to end on the synthetic dataset (tiny 64x32 inputs)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.retrieval.features import FeatureMeta, load_features, save_features
from reid_stra.viz.ranklist import OTHER_ID, SAME_CAMERA, SAME_ID, UNKNOWN_ID, tile_origin

SIZE = ["--height", "64", "--width", "32"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path, calibrated_checkpoint) -> Path:
    root = tmp_path_factory.mktemp("cli_retrieval")
    calibrated_checkpoint(root / "model.pth", seed=0)
    calibrated_checkpoint(root / "other.pth", seed=1)
    return root


@pytest.fixture(scope="module")
def gallery(workdir: Path, synthetic_root: Path) -> Path:
    from reid_stra.cli.app import run

    out = workdir / "gallery.npy"
    code = run(
        [
            "extract",
            str(synthetic_root / "bounding_box_test"),
            "-o",
            str(out),
            "--weights",
            str(workdir / "model.pth"),
            "--workers",
            "0",
            "--device",
            "cpu",
            *SIZE,
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def query_features(workdir: Path, synthetic_root: Path) -> Path:
    from reid_stra.cli.app import run

    out = workdir / "query.npy"
    code = run(
        [
            "extract",
            str(synthetic_root / "query"),
            "-o",
            str(out),
            "--weights",
            str(workdir / "model.pth"),
            "--workers",
            "0",
            "--device",
            "cpu",
            *SIZE,
        ]
    )
    assert code == 0
    return out


def test_extract_writes_features_and_sidecar(cli, workdir: Path, synthetic_root: Path) -> None:
    out = workdir / "query_w2.npy"
    result = cli(
        "extract",
        synthetic_root / "query",
        "-o",
        out,
        "--weights",
        workdir / "model.pth",
        "--workers",
        "2",
        "--batch-size",
        "5",
        "--device",
        "cpu",
        "--flip",
        "--json",
        *SIZE,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 18 and report["dim"] == 1280 and report["images_with_ids"] == 18
    feats, meta = load_features(out)
    assert feats.shape == (18, 1280)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert meta.flip and meta.normalized and meta.input_size == [64, 32]
    assert meta.model == "mobilenetv2" and meta.weights == str(workdir / "model.pth")
    assert len(set(meta.pids)) == 6


def test_search_json_matches_brute_force(
    cli, synthetic_root: Path, gallery: Path, query_features: Path
) -> None:
    query = query_features
    result = cli(
        "search",
        synthetic_root / "query",
        "--gallery",
        gallery,
        "--top-k",
        "5",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    q, q_meta = load_features(query)
    g, g_meta = load_features(gallery)
    expected = np.argsort(1.0 - q @ g.T, axis=1, kind="stable")[:, :5]
    assert [r["query"] for r in results] == q_meta.paths
    for row, r in enumerate(results):
        assert [m["index"] for m in r["matches"]] == expected[row].tolist()
        assert [m["rank"] for m in r["matches"]] == [1, 2, 3, 4, 5]
        first = r["matches"][0]
        assert first["path"] == g_meta.paths[first["index"]] and first["pid"] == g_meta.pids[first["index"]]
        assert first["distance"] == pytest.approx(1.0 - float(q[row] @ g[first["index"]]), abs=1e-5)
    # The same search from saved query features gives the same answer.
    again = cli("search", "--query-features", query, "--gallery", gallery, "--top-k", "5", "--json")
    assert json.loads(again.stdout)["results"] == results


def test_search_table_csv_and_picture(cli, workdir: Path, synthetic_root: Path, gallery: Path) -> None:
    queries = sorted((synthetic_root / "query").glob("*.jpg"))[:3]
    picture, table = workdir / "ranks.png", workdir / "ranks.csv"
    result = cli(
        "search",
        *queries,
        "--gallery",
        gallery,
        "--top-k",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--show",
        picture,
        "--csv",
        table,
    )
    assert result.exit_code == 0, result.stderr
    assert "rank" in result.stdout and "distance" in result.stdout and queries[0].name in result.stdout
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 12 and rows[0]["rank"] == "1" and rows[0]["query"] == str(queries[0])
    with Image.open(picture) as image:
        assert image.format == "PNG" and image.height > 3 * 128 and image.width > 5 * 64
        rgb = image.convert("RGB")
        # Ids are known, so every match has a green (same id), red (other id) or amber (same id
        # from the query's own camera, ignored by the protocol) border.
        borders = [rgb.getpixel((x + 1, y + 1)) for x, y in (tile_origin(0, col) for col in range(4))]
        assert set(borders) <= {SAME_ID, OTHER_ID, SAME_CAMERA} and UNKNOWN_ID not in borders
    to_stdout = cli(
        "search", *queries[:1], "--gallery", gallery, "--top-k", "2", "--workers", "0", "--csv", "-"
    )
    lines = list(csv.reader(io.StringIO(to_stdout.stdout)))
    assert lines[0][:4] == ["query", "query_id", "query_camera", "rank"] and len(lines) == 3


def test_top_k_larger_than_gallery_is_clamped_with_notice(cli, gallery: Path, query_features: Path) -> None:
    result = cli(
        "search", "--query-features", query_features, "--gallery", gallery, "--top-k", "1000", "--json"
    )
    assert result.exit_code == 0 and "only 23 images" in result.stderr
    assert all(len(r["matches"]) == 23 for r in json.loads(result.stdout)["results"])


def test_mismatched_model_or_weights_are_errors(
    cli, workdir: Path, synthetic_root: Path, gallery: Path
) -> None:
    query = synthetic_root / "query"
    result = cli("search", query, "--gallery", gallery, "--model", "resnet50", "--workers", "0")
    assert result.exit_code == 2 and "made with 'mobilenetv2'" in result.stderr
    result = cli("search", query, "--gallery", gallery, "--weights", workdir / "other.pth", "--workers", "0")
    assert result.exit_code == 2 and "is not the checkpoint the gallery was extracted with" in result.stderr


def test_mismatched_query_features_are_errors(
    cli, workdir: Path, synthetic_root: Path, gallery: Path
) -> None:
    raw = workdir / "raw.npy"
    assert (
        cli(
            "extract",
            synthetic_root / "query",
            "-o",
            raw,
            "--weights",
            workdir / "model.pth",
            "--workers",
            "0",
            "--no-normalize",
            *SIZE,
        ).exit_code
        == 0
    )
    result = cli("search", "--query-features", raw, "--gallery", gallery)
    assert result.exit_code == 2 and "L2 normalization" in result.stderr
    _, meta = load_features(gallery)
    small = workdir / "small.npy"
    fake = FeatureMeta(
        paths=["a.jpg", "b.jpg"],
        model=meta.model,
        weights_sha256=meta.weights_sha256,
        input_size=meta.input_size,
    )
    save_features(small, np.eye(2, 64, dtype=np.float32), fake)
    result = cli("search", "--query-features", small, "--gallery", gallery)
    assert result.exit_code == 2 and "embedding dimension 64 differs" in result.stderr
    result = cli("search", "--gallery", gallery)
    assert result.exit_code == 2 and "exactly one" in result.stderr


def test_bad_images_are_reported_and_can_be_skipped(cli, workdir: Path, synthetic_root: Path) -> None:
    folder = workdir / "with_bad"
    shutil.copytree(synthetic_root / "query", folder, dirs_exist_ok=True)
    bad = folder / "0099_c1s1_000001_01.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    out = workdir / "bad.npy"
    result = cli("extract", folder, "-o", out, "--weights", workdir / "model.pth", "--workers", "2", *SIZE)
    assert result.exit_code == 2 and str(bad) in result.stderr and "--skip-bad" in result.stderr
    assert not out.exists()
    result = cli(
        "extract",
        folder,
        "-o",
        out,
        "--weights",
        workdir / "model.pth",
        "--workers",
        "0",
        "--skip-bad",
        "--json",
        *SIZE,
    )
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["skipped"][0]["path"] == str(bad)
    assert summary["skipped_images"] == 1 and summary["extracted"] == summary["images"] == 18  # not 19
    assert load_features(out)[0].shape[0] == 18


def test_index_build_info_and_search_with_it(cli, workdir: Path, gallery: Path, query_features: Path) -> None:
    copy = workdir / "indexed.npy"
    shutil.copy(gallery, copy)
    shutil.copy(gallery.with_suffix(".json"), copy.with_suffix(".json"))
    result = cli("index", "info", copy, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["index"] is None
    result = cli("index", "build", copy, "--kind", "hnsw", "--m", "8", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "hnsw" and copy.with_suffix(".faiss").is_file()
    info = json.loads(cli("index", "info", copy, "--json").stdout)
    assert info["index_kind"] == "hnsw" and info["index_current"] is True
    table = cli("index", "build", copy, "--kind", "hnsw", "--m", "8")  # the table a person reads
    assert table.exit_code == 0 and "{'" not in table.stdout and "m 8" in table.stdout
    exact = json.loads(
        cli("search", "--query-features", query_features, "--gallery", gallery, "--json").stdout
    )
    approx = json.loads(cli("search", "--query-features", query_features, "--gallery", copy, "--json").stdout)
    firsts = [r["matches"][0]["index"] for r in approx["results"]]
    assert firsts == [r["matches"][0]["index"] for r in exact["results"]]
    assert exact["index"]["kind"] == "flat" and approx["index"]["kind"] == "hnsw"
    assert approx["index"]["params"]["m"] == 8 and approx["index"]["distance"] == "1 - cosine similarity"
    # Another kind is used for that search, but the user's saved HNSW index stays...
    args = ("search", "--query-features", query_features, "--gallery", copy, "--index", "ivf", "--json")
    ivf = cli(*args)
    assert ivf.exit_code == 0 and json.loads(ivf.stdout)["index"]["kind"] == "ivf"
    assert "--rebuild-index replaces it" in ivf.stderr and "a ivf" not in ivf.stderr
    assert json.loads(cli("index", "info", copy, "--json").stdout)["index_kind"] == "hnsw"
    # ...until --rebuild-index asks for it to be replaced.
    assert cli(*args, "--rebuild-index").exit_code == 0
    assert json.loads(cli("index", "info", copy, "--json").stdout)["index_kind"] == "ivf"
    table = cli("search", "--query-features", query_features, "--gallery", copy, "--top-k", "2")
    assert "answered by the ivf index (metric ip" in table.stderr and "1 - cosine similarity" in table.stderr
    result = cli("index", "build", copy, "--kind", "annoy")
    assert result.exit_code == 2 and "unknown index kind" in result.stderr


def test_bad_search_options_fail_before_any_query_is_embedded(cli, tmp_path: Path, gallery: Path) -> None:
    """Errors name the option typed and come before the slow work (a broken query would fail later)."""
    broken = tmp_path / "0001_c1s1_000001_01.jpg"
    broken.write_bytes(b"not a jpeg")
    for args, expected in [
        (("--top-k", "0"), "error: --top-k 0: must be at least 1"),
        (("--index", "ivfpq"), "error: --index ivfpq: needs at least"),
        (("--index", "ivfqp"), "error: unknown --index kind 'ivfqp' (did you mean 'ivfpq'?)"),
        (("--index", "hnsw", "--nprobe", "4"), "error: --nprobe: does not apply to --index hnsw"),
        (("--show", str(tmp_path / "ranks.jpg")), "error: --show"),
    ]:
        result = cli("search", broken, "--gallery", gallery, "--workers", "0", *args)
        assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith(expected), result.stderr
    picture = cli("search", broken, "--gallery", tmp_path / "ranks.png")
    assert "error: --gallery " in picture.stderr and "an image, not a feature file" in picture.stderr
    assert "ranks.png.npy" not in picture.stderr


def test_output_name_suggestion_replaces_the_suffix(cli, synthetic_root: Path, tmp_path: Path) -> None:
    result = cli("extract", synthetic_root / "query", "-o", tmp_path / "feats.txt")
    assert result.exit_code == 2 and f"use e.g. {tmp_path / 'feats.npy'}" in result.stderr
    assert "feats.txt.npy" not in result.stderr and not any(tmp_path.iterdir())


def test_a_second_extract_into_the_same_file_is_refused_before_the_model_loads(
    cli, synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """Issue 28, item 10: the lock is checked before the 10-40 s model load, not after it."""
    import reid_stra.models.build as build
    from reid_stra.utils.atomic import exclusive_lock

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output lock was checked")

    monkeypatch.setattr(build, "load_model", must_not_load)
    out = tmp_path / "gallery.npy"
    with exclusive_lock(out):  # another extract writing gallery.npy
        result = cli("extract", synthetic_root / "query", "--out", out)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {out} is being written by another reid-stra process; "
        "wait for it to finish or choose another output"
    ]
    assert not out.exists()
