"""`reid-stra export`: one self-contained ONNX or TorchScript file plus its metadata sidecar;
``--int8 --calibrate CROPS`` quantizes the ONNX file on the user's own crops."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import DataOptions, JsonOutput, ModelName, WeightsFile
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("export")(export)


def export(
    output: Path = typer.Option(
        ..., "-o", "--out", "--output", help="File to write (model.onnx, model.int8.onnx or model.pt)."
    ),
    model: ModelName = None,
    weights: WeightsFile = None,
    export_format: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    normalize: bool = typer.Option(
        True,
        "--normalize/--no-normalize",
        help="L2-normalize the embedding inside the graph (stated in the metadata).",
    ),
    opset: int = typer.Option(18, "--opset", help="ONNX opset version."),
    int8: bool = typer.Option(
        False, "--int8", help="Quantize to int8 (ONNX Runtime static quantization); needs --calibrate."
    ),
    calibrate: list[str] = typer.Option(
        [],
        "--calibrate",
        metavar="CROPS",
        help="Crops from your cameras for --int8 (images, folders, globs or path lists; repeatable). "
        "A seeded share is held out to measure the cosine to fp32.",
    ),
    calibration_size: int = typer.Option(
        256, "--calibration-size", help="Calibration crops drawn (seeded) from --calibrate."
    ),
    fp32_layers: str = typer.Option(
        "auto",
        "--fp32-layers",
        help="Leading convolutions kept in fp32 under --int8: auto (as few as reach the cosine floor) "
        "or a count.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration / held-out draw."),
    val_root: Path | None = typer.Option(
        None,
        "--val-root",
        show_default="none",
        help="A labelled query/gallery split: report mAP and rank-1 of fp32 and int8 on it "
        "(use crops of other people for --calibrate).",
    ),
    val_data: str = typer.Option("market1501", "--val-data", help="Dataset reader of --val-root."),
    val_data_opt: DataOptions = (),
    as_json: JsonOutput = False,
) -> None:
    """Export a model for deployment: input `images` (N x 3 x H x W float32, RGB, ImageNet-normalized),
    output `features` (N x D), dynamic batch, eval mode; metadata in OUTPUT.metadata.json."""
    from reid_stra.deploy.export import export_model
    from reid_stra.errors import ReidError
    from reid_stra.models import load_model

    if weights is not None and weights.suffix.lower() == ".onnx":
        raise ReidError(f"--weights {weights}: already an exported ONNX file; export from a checkpoint")
    if int8 and not calibrate:
        raise ReidError("--int8 needs --calibrate CROPS: a few hundred crops from your own cameras")
    if not int8 and (calibrate or val_root is not None):
        raise ReidError("--calibrate and --val-root only apply with --int8")
    if int8 and export_format != "onnx":
        raise ReidError(f"--int8 --format {export_format}: int8 export writes ONNX; use --format onnx")
    net, model_info = load_model(model, weights, device="cpu")
    if int8:
        summary = _export_int8(
            net,
            model_info,
            output,
            calibrate,
            calibration_size,
            fp32_layers,
            seed,
            normalize,
            val_root,
            val_data,
            val_data_opt,
        )
    else:
        info(f"exporting {model_info['model']} ({model_info['weights']}) as {export_format}")
        result = export_model(net, model_info, output, format=export_format, normalize=normalize, opset=opset)
        summary = {"output": str(result.path), "metadata": str(result.metadata_path), "format": result.format}
        summary.update(_model_fields(model_info, normalize))
        summary.update(size_mb=round(result.size_bytes / 1e6, 2), sha256=result.sha256)
    if as_json:
        emit_json(summary)
    else:
        print_table("export", ["field", "value"], [(k, v) for k, v in summary.items()])


def _model_fields(model_info: dict, normalize: bool) -> dict:
    return {
        "model": model_info["model"],
        "input_size": list(model_info["cfg"].input_size),
        "embedding_dim": model_info["cfg"].embedding_dim,
        "normalized": normalize,
    }


def _export_int8(
    net,
    model_info,
    output,
    calibrate,
    calibration_size,
    fp32_layers,
    seed,
    normalize,
    val_root,
    val_data,
    val_data_opt,
) -> dict:
    from reid_stra.data import load_dataset
    from reid_stra.data.datasets.registry import parse_dataset_options
    from reid_stra.deploy.onnx_backend import load_onnx_model
    from reid_stra.deploy.quantize import export_int8, record_in_metadata
    from reid_stra.errors import ReidError
    from reid_stra.retrieval.evaluation import evaluate_model
    from reid_stra.retrieval.inputs import expand_inputs

    if fp32_layers.strip().lower() == "auto":
        kept = None
    elif fp32_layers.strip().isdigit():
        kept = int(fp32_layers)
    else:
        raise ReidError(f"--fp32-layers {fp32_layers}: expected auto or a count (0, 1, 2, ...)")
    if calibration_size < 1:
        raise ReidError(f"--calibration-size {calibration_size}: must be at least 1")
    dataset = None
    if val_root is not None:  # read (and refused) before the minutes of calibration
        dataset = load_dataset(
            val_data,
            val_root,
            splits=("query", "gallery"),
            **parse_dataset_options(val_data, val_data_opt),
            progress=progress_wanted(),
        )
    crops = expand_inputs(calibrate, "--calibrate")
    info(f"exporting {model_info['model']} ({model_info['weights']}) as int8 ONNX, calibrated on your crops")
    result = export_int8(
        net,
        model_info,
        output,
        crops,
        calibration_size=calibration_size,
        seed=seed,
        fp32_layers=kept,
        normalize=normalize,
        notice=info,
    )
    report = result.report
    summary = {"output": str(result.path), "metadata": str(result.metadata_path), "format": "onnx int8"}
    summary.update(_model_fields(model_info, normalize))
    summary.update(
        size_mb=round(result.size_bytes / 1e6, 2),
        sha256=result.sha256,
        calibration_crops=report.calibration_crops,
        held_out_crops=report.held_out_crops,
        fp32_layers=report.fp32_layers,
        cosine_to_fp32_mean=round(report.cosine_mean, 4),
        cosine_to_fp32_min=round(report.cosine_min, 4),
    )
    if dataset is not None:
        int8_model, _ = load_onnx_model(result.path)
        accuracy = {}
        for name, candidate in (("fp32", net), ("int8", int8_model)):
            info(f"evaluating {name} on {val_root}")
            scores = evaluate_model(candidate, dataset.query, dataset.gallery, progress=progress_wanted())
            accuracy[name] = {"mAP": round(scores["mAP"], 4), "rank1": round(scores["rank1"], 4)}
        record_in_metadata(result.path, "validation", {"root": str(val_root), **accuracy})
        for name, scores in accuracy.items():
            summary[f"{name}_mAP"], summary[f"{name}_rank1"] = scores["mAP"], scores["rank1"]
    return summary
