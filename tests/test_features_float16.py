"""`extract --dtype float16` (issue 27, item 2): half the bytes on disk, read back as float32 by
search, evaluate and index, said in the sidecar; bad values and unknown types refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reid_stra.errors import ReidError
from reid_stra.retrieval.features import FeatureMeta, load_features, save_features
from tests.helpers.kill_launcher import killed_launcher

SMALL = (64, 32)
FAST = ["--workers", "0", "--backend", "pytorch", "--json"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, calibrated_checkpoint) -> Path:
    return calibrated_checkpoint(tmp_path_factory.mktemp("f16") / "small.pth", seed=0, input_size=SMALL)


def _extract(cli, weights: Path, images: Path, out: Path, *extra: str):
    result = cli("extract", images, "--weights", weights, "-o", out, *FAST, *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_float16_files_are_half_the_size_and_read_back_as_float32(
    cli, weights: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    full, half = tmp_path / "g32.npy", tmp_path / "g16.npy"
    _extract(cli, weights, synthetic_root / "bounding_box_test", full)
    report = _extract(cli, weights, synthetic_root / "bounding_box_test", half, "--dtype", "float16")
    assert report["dtype"] == "float16"
    assert np.load(half).dtype == np.float16 and np.load(full).dtype == np.float32
    header = 128  # .npy header bytes
    assert half.stat().st_size - header == (full.stat().st_size - header) // 2
    sidecar = json.loads(half.with_suffix(".json").read_text())
    assert sidecar["dtype"] == "float16" and sidecar["version"] == 2
    assert json.loads(full.with_suffix(".json").read_text())["version"] == 1  # older readers still read it
    f32, _ = load_features(full)
    f16, meta = load_features(half)
    assert f16.dtype == np.float32 and meta.dtype == "float16"
    assert np.abs(f16 - f32).max() < 1e-3  # normalized rows: float16 keeps ~3 decimal digits

    # search and evaluate take the float16 gallery as they take the float32 one.
    query = tmp_path / "q.npy"
    _extract(cli, weights, synthetic_root / "query", query)
    scores = {}
    for name, gallery in (("f32", full), ("f16", half)):
        result = cli("evaluate", "--query-features", query, "--gallery-features", gallery, "--json")
        assert result.exit_code == 0, result.stderr
        scores[name] = json.loads(result.stdout)["mAP"]
        found = cli("search", "--query-features", query, "--gallery", gallery, "--top-k", "3", "--json")
        assert found.exit_code == 0, found.stderr
    assert scores["f16"] == pytest.approx(scores["f32"], abs=0.01)
    index = cli("index", "build", half, "--json")
    assert index.exit_code == 0, index.stderr


@pytest.mark.slow
def test_the_stored_type_can_change_on_resume(
    cli, weights: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    """Chunks are float32 whatever the final type, so a killed float32 run resumes as float16."""
    images = synthetic_root / "bounding_box_train"
    reference = tmp_path / "reference.npy"
    _extract(cli, weights, images, reference, "--batch-size", "8")
    out = tmp_path / "g.npy"
    command = ["extract", str(images), "--weights", str(weights), "-o", str(out), *FAST]
    killed = subprocess.run(
        [*killed_launcher("extract.batch@3"), *command, "--batch-size", "8"], capture_output=True
    )
    assert killed.returncode != 0 and not out.exists()
    report = _extract(cli, weights, images, out, "--batch-size", "8", "--dtype", "float16", "--resume")
    assert report["dtype"] == "float16" and report["reused"] >= 16
    assert np.abs(load_features(out)[0] - load_features(reference)[0]).max() < 1e-3


def test_values_beyond_float16_and_unknown_types_are_refused(tmp_path: Path) -> None:
    meta = FeatureMeta(paths=["a.jpg", "b.jpg"])
    huge = np.array([[1.0, 2.0], [7e4, 0.0]], dtype=np.float32)
    with pytest.raises(ReidError, match=r"rows 1 exceed float16's range"):
        save_features(tmp_path / "h.npy", huge, meta, dtype="float16")
    assert not (tmp_path / "h.npy").exists()
    with pytest.raises(ReidError, match="dtype int8: features are stored as float32 or float16"):
        save_features(tmp_path / "i.npy", huge, meta, dtype="int8")
    save_features(tmp_path / "ok.npy", np.ones((2, 2), np.float32), FeatureMeta(paths=["a", "b"]), "float16")
    sidecar = tmp_path / "ok.json"
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "dtype": "int8"}))
    with pytest.raises(ReidError, match="rows stored as int8; this reid-stra reads float32 or float16"):
        load_features(tmp_path / "ok.npy")
    sidecar.write_text(json.dumps({**data, "dtype": "float32"}))  # the array is float16
    with pytest.raises(ReidError, match="features must be float32 \\(as its sidecar says\\), got float16"):
        load_features(tmp_path / "ok.npy")


def test_a_bad_dtype_option_fails_before_the_model_loads(cli, synthetic_root: Path, tmp_path: Path) -> None:
    result = cli("extract", synthetic_root / "query", "-o", tmp_path / "x.npy", "--dtype", "bfloat16")
    assert result.exit_code != 0
    assert "--dtype bfloat16: choose float32 or float16" in result.stderr
    assert not (tmp_path / "x.npy").exists()


def test_an_index_over_a_float16_file_finds_what_the_float32_one_finds(tmp_path: Path) -> None:
    from reid_stra.retrieval.index import build_index

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((3000, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    meta = FeatureMeta(paths=[f"{i}.jpg" for i in range(len(rows))])
    save_features(tmp_path / "g16.npy", rows, meta, dtype="float16")
    stored, _ = load_features(tmp_path / "g16.npy", as_float32=False)
    assert stored.dtype == np.float16  # kept as stored: the index converts block by block
    queries = rows[:50] + 0.01 * rng.standard_normal((50, 32)).astype(np.float32)
    found = {}
    for name, gallery in (("f32", rows), ("f16", stored)):
        index = build_index(gallery, "ivfpq", nlist=16, nprobe=16, m=8, rerank=True, progress=False)
        found[name] = index.search(queries, 5)[1]
    # Each query is a gallery row plus noise: both indexes find that row first.
    assert (found["f16"][:, 0] == np.arange(50)).all() and (found["f32"][:, 0] == np.arange(50)).all()
