"""`reid-stra export`: what a tracker loads gives the PyTorch model's features at any batch size,
with BatchNorm in eval mode; `--weights model.onnx` runs it in extract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_stra.deploy.backend import load_inference_model
from reid_stra.deploy.export import export_model, metadata_path
from reid_stra.errors import ReidError
from reid_stra.models import build_model, list_models, load_model
from reid_stra.models.shipped import models_with_shipped_weights
from reid_stra.retrieval.features import load_features

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
needs_shipped = pytest.mark.skipif(not models_with_shipped_weights(), reason="no shipped weights")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def _reference(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(images).numpy()


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory):
    if not models_with_shipped_weights():
        pytest.skip("no shipped weights")
    model, info = load_model(None, None)
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_model(model, info, out)
    return model, info, out


@pytest.mark.slow
@needs_shipped
def test_onnx_matches_pytorch_at_batch_1_7_32_and_states_its_contract(shipped_onnx) -> None:
    model, info, path = shipped_onnx
    sidecar = json.loads(metadata_path(path).read_text())
    # BoxMOT 25's reader (reid.core.artifacts/registry/preprocessing): these keys, these meanings.
    assert sidecar["schema_version"] == 1 and sidecar["model_kwargs_schema_version"] == 1
    assert sidecar["model_name"] == info["model"]
    assert sidecar["preprocess"] in ("resize", "resize_pad")  # anything else makes BoxMOT raise
    assert sidecar["model_kwargs"] == {
        "img_size": list(info["cfg"].input_size),
        "feat_dim": info["cfg"].embedding_dim,
    }
    assert "img_size" not in sidecar and "input_name" not in sidecar  # ours live under our key
    meta = sidecar["reid_stra"]
    assert meta["input_name"] == "images" and meta["output_names"] == ["features"] and meta["normalized"]
    assert meta["artifact_sha256"] and meta["source_weights_sha256"] == info["weights_sha256"]
    assert meta["imagenet_normalization"]  # what BoxMOT applies to every crop
    assert not list(path.parent.glob("*.data")), "an external-data side file was written"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    for batch in (1, 7, 32):
        images = torch.randn(batch, 3, *info["cfg"].input_size)
        (got,) = session.run(["features"], {"images": images.numpy()})
        assert got.shape == (batch, info["cfg"].embedding_dim)
        assert _cosine(got, _reference(model, images)).min() >= 0.9999
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)  # normalized in the graph
        if batch > 1:
            assert _cosine(got[:1], got[1:2])[0] < 0.999  # different images, different features
    bad_size = torch.randn(2, 3, info["cfg"].input_size[0] + 32, info["cfg"].input_size[1]).numpy()
    try:  # a changed input size is either supported (global pooling) or a clear error
        (other,) = session.run(["features"], {"images": bad_size})
        assert other.shape == (2, info["cfg"].embedding_dim)
    except Exception as exc:  # noqa: BLE001
        assert "images" in str(exc) or "dimension" in str(exc).lower()


@needs_shipped
def test_extract_with_the_onnx_file_equals_pytorch(
    cli, shipped_onnx, synthetic_root: Path, tmp_path: Path
) -> None:
    _, info, path = shipped_onnx
    crops = synthetic_root / "query"
    common = ["--workers", "0", "--device", "cpu"]
    assert cli("extract", crops, "-o", tmp_path / "pt.npy", *common).exit_code == 0
    result = cli("extract", crops, "-o", tmp_path / "onnx.npy", "--weights", path, *common)
    assert result.exit_code == 0, result.stderr
    torch_features, _ = load_features(tmp_path / "pt.npy")
    onnx_features, meta = load_features(tmp_path / "onnx.npy")
    assert meta.backend == "onnxruntime" and meta.model == info["model"]
    assert _cosine(onnx_features, torch_features).min() >= 0.9999


@pytest.mark.slow
def test_torchscript_export_of_every_zoo_model_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for name in list_models():
        model = build_model(name).eval()
        info = {"model": name, "cfg": model.pretrained_cfg.replace(input_size=(64, 32))}
        path = tmp_path / f"{name}.pt"
        export_model(model, info, path, format="torchscript", normalize=False)
        scripted = torch.jit.load(str(path))
        for batch in (1, 3):
            images = torch.randn(batch, 3, 64, 32)
            got = scripted(images).numpy()
            assert got.shape == (batch, model.embedding_dim), name
            assert _cosine(got, _reference(model, images)).min() >= 0.9999, name


@pytest.mark.slow
def test_onnx_export_of_a_stra_resnet_model(tmp_path: Path) -> None:
    """The StRA layers of the ResNet family go through the dynamo exporter as well."""
    torch.manual_seed(0)
    model = build_model("stra_resnet50").eval()
    info = {"model": "stra_resnet50", "cfg": model.pretrained_cfg.replace(input_size=(64, 32))}
    path = tmp_path / "stra_resnet50.onnx"
    export_model(model, info, path, normalize=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        images = torch.randn(batch, 3, 64, 32)
        (got,) = session.run(["features"], {"images": images.numpy()})
        assert _cosine(got, _reference(model, images)).min() >= 0.9999


def test_export_errors_are_one_line(cli, tmp_path: Path) -> None:
    result = cli("export", "-o", tmp_path / "m.onnx", "--format", "tflite")
    assert result.exit_code != 0 and "--format tflite" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "fake.onnx").write_bytes(b"not onnx")
    with pytest.raises(ReidError, match="fake.onnx.metadata.json"):
        load_inference_model(None, tmp_path / "fake.onnx")
    with pytest.raises(ReidError, match="an ONNX export, not a PyTorch checkpoint"):
        load_model(None, tmp_path / "fake.onnx")  # training, export and explain need the .pth


@needs_shipped
def test_evaluate_and_search_accept_the_onnx_file(
    cli, shipped_onnx, synthetic_root: Path, tmp_path: Path
) -> None:
    _, _, path = shipped_onnx
    common = ["--workers", "0", "--device", "cpu", "--json"]
    split = ["--data", "market1501", "--root", synthetic_root]
    torch_run = cli("evaluate", *split, *common)
    onnx_run = cli("evaluate", *split, "--weights", path, *common)
    assert torch_run.exit_code == 0 and onnx_run.exit_code == 0, onnx_run.stderr
    assert abs(json.loads(onnx_run.stdout)["mAP"] - json.loads(torch_run.stdout)["mAP"]) < 1e-3
    gallery = tmp_path / "g.npy"
    assert (
        cli(
            "extract", synthetic_root / "bounding_box_test", "-o", gallery, "--weights", path, *common
        ).exit_code
        == 0
    )
    query = sorted((synthetic_root / "query").glob("*.jpg"))[0]
    found = cli("search", query, "--gallery", gallery, *common)
    assert found.exit_code == 0, found.stderr


def test_an_export_with_the_older_flat_sidecar_still_loads(shipped_onnx, tmp_path: Path) -> None:
    """Exports made before our fields moved under "reid_stra" keep working with --weights."""
    _, info, path = shipped_onnx
    sidecar = json.loads(metadata_path(path).read_text())
    old = tmp_path / "old.onnx"
    old.write_bytes(path.read_bytes())
    flat = {"model_name": sidecar["model_name"], "preprocess": "imagenet", **sidecar["reid_stra"]}
    metadata_path(old).write_text(json.dumps(flat))
    _, old_info = load_inference_model(weights=old)
    assert old_info["cfg"].input_size == info["cfg"].input_size
    assert old_info["source_weights_sha256"] == info["weights_sha256"]


def test_features_of_the_same_weights_mix_across_backends(
    cli, shipped_onnx, synthetic_root: Path, tmp_path: Path
):
    """A PyTorch gallery with ONNX queries of the same weights: allowed (the sidecar records the
    source weights); features of another model are still refused."""
    _, info, path = shipped_onnx
    common = ["--workers", "0", "--device", "cpu"]
    onnx_query, torch_gallery, stra_gallery = tmp_path / "q.npy", tmp_path / "g.npy", tmp_path / "s.npy"
    assert (
        cli("extract", synthetic_root / "query", "-o", onnx_query, "--weights", path, *common).exit_code == 0
    )
    assert cli("extract", synthetic_root / "bounding_box_test", "-o", torch_gallery, *common).exit_code == 0
    sidecar = json.loads(onnx_query.with_suffix(".json").read_text())
    assert sidecar["backend"] == "onnxruntime" and sidecar["source_weights_sha256"] == info["weights_sha256"]
    mixed = cli("evaluate", "--query-features", onnx_query, "--gallery-features", torch_gallery, "--json")
    assert mixed.exit_code == 0, mixed.stderr
    other = [
        "extract",
        synthetic_root / "bounding_box_test",
        "-o",
        stra_gallery,
        "--model",
        "stra_mobilenetv2",
    ]
    assert cli(*other, *common).exit_code == 0
    refused = cli("evaluate", "--query-features", onnx_query, "--gallery-features", stra_gallery)
    assert refused.exit_code == 2 and "differs from" in refused.stderr
