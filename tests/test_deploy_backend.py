"""`--backend auto|pytorch|onnxruntime` and the export cache behind it (issue 30, item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reid_stra.deploy.backend as backend_module
from reid_stra.deploy.backend import cached_export, resolve_backend
from reid_stra.errors import ReidError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


SMALL = (64, 32)  # input size recorded with the test weights: quick to export and run


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, calibrated_checkpoint) -> Path:
    return calibrated_checkpoint(tmp_path_factory.mktemp("backend") / "small.pth", seed=0, input_size=SMALL)


def _crops(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (int(rng.integers(40, 90)), int(rng.integers(20, 50)), 3), np.uint8)
        for _ in range(count)
    ]


def test_backend_names_and_what_auto_picks(monkeypatch) -> None:
    with pytest.raises(ReidError, match="did you mean 'onnxruntime'"):
        resolve_backend("onnx")
    assert resolve_backend("auto", "cpu").name == "onnxruntime"
    assert resolve_backend("auto", "cuda:0").name == "pytorch"
    assert resolve_backend("auto", "cpu", precision="bf16").name == "pytorch"
    assert resolve_backend("PyTorch", "cpu").name == "pytorch"
    monkeypatch.setattr(backend_module.importlib.util, "find_spec", lambda name: None)
    fallback = resolve_backend("auto", "cpu")
    assert fallback.name == "pytorch" and "pip install 'reid-stra[export]'" in fallback.reason
    with pytest.raises(ReidError, match=r"backend onnxruntime: .*pip install 'reid-stra\[export\]'"):
        resolve_backend("onnxruntime", "cpu")


def test_an_unknown_backend_is_a_one_line_error_before_the_model_loads(
    cli, weights: Path, synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    import reid_stra.models.build as build

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before --backend was checked")

    monkeypatch.setattr(build, "load_model", must_not_load)
    query = synthetic_root / "query"
    result = cli("extract", query, "-o", tmp_path / "f.npy", "--weights", weights, "--backend", "onnx")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown backend 'onnx'"), result.stderr


@pytest.mark.slow
def test_auto_gives_pytorchs_features_at_tracker_and_gallery_batch_sizes(
    weights: Path, tmp_path: Path, monkeypatch
) -> None:
    from reid_stra import Embedder

    monkeypatch.setenv("REID_STRA_CACHE_DIR", str(tmp_path))
    auto = Embedder(weights=weights, batch_size=32)
    reference = Embedder(weights=weights, backend="pytorch")
    assert auto.info["backend"] == "onnxruntime" and reference.info["backend"] == "pytorch"
    assert auto.info["weights_sha256"] == reference.info["weights_sha256"]  # the source weights
    for count in (1, 7, 32):
        crops = _crops(count, seed=count)
        got, expected = auto.embed(crops), reference.embed(crops)
        assert got.shape == expected.shape == (count, reference.dim)
        assert float((got * expected).sum(1).min()) >= 0.9999, count
    assert auto.predict([]) == []


@pytest.mark.slow
def test_the_export_cache_is_reused_and_keyed_by_the_weights(
    weights: Path, tmp_path: Path, monkeypatch, calibrated_checkpoint
) -> None:
    from reid_stra import Embedder
    from reid_stra.deploy import export

    monkeypatch.setenv("REID_STRA_CACHE_DIR", str(tmp_path))
    first = Embedder(weights=weights)
    exported = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert [Path(first.info["export"])] == exported

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this weights' graph")

    monkeypatch.setattr(export, "export_model", no_second_export)
    again = Embedder(weights=weights)
    assert again.info["export"] == first.info["export"]
    monkeypatch.undo()
    monkeypatch.setenv("REID_STRA_CACHE_DIR", str(tmp_path))
    other = calibrated_checkpoint(
        tmp_path / "other.pth", seed=1, input_size=SMALL
    )  # changed weights: a new entry
    changed = Embedder(weights=other)
    assert changed.info["export"] != first.info["export"]
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


@pytest.mark.slow
def test_two_processes_filling_the_cache_at_once_both_succeed(weights: Path, tmp_path: Path) -> None:
    """Each writes whole files under temporary names and renames them; neither sees a half file."""
    script = (
        "import sys, numpy as np; from reid_stra import Embedder; "
        "e = Embedder(weights=sys.argv[1]); "
        "np.save(sys.argv[2], e.embed([np.full((64, 32, 3), 127, np.uint8)])); print(e.info['export'])"
    )
    env = {**__import__("os").environ, "REID_STRA_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(weights), str(tmp_path / f"out{n}.npy")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(2)
    ]
    outputs = [run.communicate() for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-500:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]  # one cache entry
    assert np.array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))
    entry = Path(outputs[0][0].strip())
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name, entry.name + ".metadata.json"]


@pytest.mark.slow
def test_a_pytorch_gallery_searched_with_onnx_queries_of_the_same_weights(
    cli, weights: Path, synthetic_root: Path, tmp_path: Path, calibrated_checkpoint
) -> None:
    gallery = tmp_path / "gallery.npy"
    made = cli("extract", synthetic_root / "bounding_box_test", "-o", gallery, "--weights", weights,
               "--backend", "pytorch", "--workers", "0", "--json")  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert json.loads(gallery.with_suffix(".json").read_text())["backend"] == "pytorch"
    result = cli("search", synthetic_root / "query", "--gallery", gallery, "--backend", "onnxruntime",
                 "--workers", "0", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "backend onnxruntime: asked for" in result.stderr
    assert len(json.loads(result.stdout)["results"]) == 18
    other = calibrated_checkpoint(tmp_path / "other.pth", seed=3, input_size=SMALL)
    refused = cli(
        "search", synthetic_root / "query", "--gallery", gallery, "--weights", other, "--workers", "0"
    )
    assert refused.exit_code == 2 and "is not the checkpoint the gallery was extracted with" in refused.stderr


def test_cached_export_needs_a_checksum(weights: Path, tmp_path: Path) -> None:
    from reid_stra.models import load_model

    model, info = load_model(weights=weights)
    with pytest.raises(ReidError, match="no checksum"):
        cached_export(model, {**info, "weights_sha256": None}, tmp_path)
