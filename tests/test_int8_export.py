"""`reid-stra export --int8 --calibrate CROPS` (issue 30, item 2): a quantized ONNX file that loads
where the fp32 export loads, with its parity to fp32 measured on held-out crops and recorded."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from reid_stra.deploy.quantize import COSINE_FLOOR, HELD_OUT, MIN_CROPS, cosine_to, split_crops
from reid_stra.errors import ReidError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SMALL = (64, 32)


def _ops(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_held_out_crops_are_never_calibration_crops_and_the_draw_is_seeded() -> None:
    paths = [f"crop_{i:03d}.jpg" for i in range(100)]
    calibration, held = split_crops(paths, 50, seed=3)
    assert len(held) == 20 and len(calibration) == 50  # a fifth held out of a small set
    assert not set(calibration) & set(held)
    assert split_crops(list(reversed(paths)), 50, seed=3) == (calibration, held)  # order of input
    assert split_crops(paths, 50, seed=4) != (calibration, held)
    many = [f"crop_{i:04d}.jpg" for i in range(1000)]
    calibration, held = split_crops(many, 256, seed=0)
    assert len(held) == HELD_OUT and len(calibration) == 256
    with pytest.raises(ReidError, match=f"needs at least {MIN_CROPS}"):
        split_crops(paths[: MIN_CROPS - 1], 256, seed=0)


def test_cosine_is_row_wise() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[3.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    assert cosine_to(a, b).tolist() == [1.0, 0.0]


@pytest.mark.slow
def test_int8_export_of_the_shipped_model_stays_close_to_fp32_on_held_out_crops(
    cli, shared_dir: Path, tmp_path: Path
) -> None:
    from reid_stra.deploy.onnx_backend import load_onnx_model
    from reid_stra.models import load_model
    from reid_stra.retrieval.extract import extract_features

    train = sorted(str(p) for p in (shared_dir / "data/Market-1501-mini/bounding_box_train").glob("*.jpg"))
    crops = train[:40]
    listing = tmp_path / "crops.txt"
    listing.write_text("\n".join(crops) + "\n")
    out = tmp_path / "reid.int8.onnx"
    result = cli("export", "--int8", "--calibrate", listing, "--calibration-size", "32", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["format"] == "onnx int8" and summary["calibration_crops"] == 32

    # Quantized for real: integer weights and quantize/dequantize pairs, and a much smaller file.
    ops = _ops(out)
    assert ops["QuantizeLinear"] > 20 and ops["DequantizeLinear"] > 20
    assert out.stat().st_size < 0.4 * 4 * 2.2e6  # fp32 MobileNetV2 is ~2.2M weights of 4 bytes

    meta = json.loads((tmp_path / "reid.int8.onnx.metadata.json").read_text())
    # BoxMOT reads these fields to load the file exactly as it loads the fp32 export.
    assert meta["model_name"] == "mobilenetv2" and meta["preprocess"] == "resize"
    assert meta["model_kwargs"]["img_size"] == [256, 128]
    ours = meta["reid_stra"]
    assert ours["precision"] == "int8"
    report = ours["int8"]
    assert report["held_out_crops"] == 8 and report["calibration_crops"] == 32
    # The automatic search stops at the first count that reaches the floor, or keeps the best.
    attempts = [a["fp32_layers"] for a in report["attempts"]]
    assert attempts == list(range(len(attempts)))
    reached = [a for a in report["attempts"] if a["cosine_mean"] >= COSINE_FLOOR]
    assert not reached or reached[0]["fp32_layers"] == attempts[-1] == report["fp32_layers"]

    # Measured here, independently of the report: the int8 file against the PyTorch model on the
    # crops the report held out.
    _, held = split_crops(crops, 32, seed=0)
    fp32_model, info = load_model(None, None)
    int8_model, int8_info = load_onnx_model(out)
    assert int8_info["source_weights_sha256"] == info["weights_sha256"]
    options = {"input_size": (256, 128), "workers": 0, "progress": False}
    cosine = cosine_to(
        extract_features(fp32_model, held, **options), extract_features(int8_model, held, **options)
    )
    assert cosine.mean() > 0.99 and cosine.min() > 0.97
    assert abs(cosine.mean() - report["cosine_mean"]) < 2e-3


@pytest.mark.slow
def test_int8_with_a_labelled_split_reports_fp32_and_int8_accuracy(
    cli, calibrated_checkpoint, synthetic_root: Path, tmp_path: Path
) -> None:
    weights = calibrated_checkpoint(tmp_path / "small.pth", seed=0, input_size=SMALL)
    out = tmp_path / "small.int8.onnx"
    crops = synthetic_root / "bounding_box_train"
    result = cli(
        "export", "--weights", weights, "--int8", "--calibrate", crops, "--fp32-layers", "2",
        "--val-root", synthetic_root, "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["fp32_layers"] == 2
    validation = json.loads((tmp_path / "small.int8.onnx.metadata.json").read_text())["reid_stra"]["int8"][
        "validation"
    ]
    assert set(validation) == {"root", "fp32", "int8"}
    # fp32's number is the one `evaluate` gives for the checkpoint.
    evaluated = cli(
        "evaluate", "--weights", weights, "--data", "market1501", "--root", synthetic_root, "--json",
        "--backend", "pytorch",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.stderr
    assert validation["fp32"]["mAP"] == pytest.approx(json.loads(evaluated.stdout)["mAP"], abs=1e-4)
    assert abs(validation["int8"]["mAP"] - validation["fp32"]["mAP"]) < 0.1
    assert summary["int8_mAP"] == validation["int8"]["mAP"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--int8"], "--int8 needs --calibrate"),
        (["--calibrate", "crops"], "--calibrate and --val-root only apply with --int8"),
        (["--int8", "--calibrate", "crops", "--format", "torchscript"], "int8 export writes ONNX"),
        (["--int8", "--calibrate", "crops", "--fp32-layers", "many"], "--fp32-layers many: expected auto"),
        (["--int8", "--calibrate", "crops", "--calibration-size", "0"], "--calibration-size 0"),
    ],
)
def test_int8_option_errors_are_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("export", "-o", tmp_path / "x.onnx", *args)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_too_few_calibration_crops_is_refused_before_anything_is_written(
    cli, synthetic_root: Path, tmp_path: Path
) -> None:
    few = sorted((synthetic_root / "query").glob("*.jpg"))[:3]
    result = cli("export", "--int8", *[a for p in few for a in ("--calibrate", p)], "-o", tmp_path / "x.onnx")
    assert result.exit_code != 0
    assert f"needs at least {MIN_CROPS}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.onnx").exists()
