"""`reid-stra export`: one self-contained ONNX or TorchScript file plus its metadata sidecar."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import JsonOutput, ModelName, WeightsFile
from reid_stra.cli.output import emit_json, info, print_table


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("export")(export)


def export(
    output: Path = typer.Option(
        ..., "-o", "--out", "--output", help="File to write (model.onnx or model.pt)."
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
    as_json: JsonOutput = False,
) -> None:
    """Export a model for deployment: input `images` (N x 3 x H x W float32, RGB, ImageNet-normalized),
    output `features` (N x D), dynamic batch, eval mode; metadata in OUTPUT.metadata.json."""
    from reid_stra.deploy.export import export_model
    from reid_stra.errors import ReidError
    from reid_stra.models import load_model

    if weights is not None and weights.suffix.lower() == ".onnx":
        raise ReidError(f"--weights {weights}: already an exported ONNX file; export from a checkpoint")
    net, model_info = load_model(model, weights, device="cpu")
    info(f"exporting {model_info['model']} ({model_info['weights']}) as {export_format}")
    result = export_model(net, model_info, output, format=export_format, normalize=normalize, opset=opset)
    summary = {
        "output": str(result.path),
        "metadata": str(result.metadata_path),
        "format": result.format,
        "model": model_info["model"],
        "input_size": list(model_info["cfg"].input_size),
        "embedding_dim": model_info["cfg"].embedding_dim,
        "normalized": normalize,
        "size_mb": round(result.size_bytes / 1e6, 2),
        "sha256": result.sha256,
    }
    if as_json:
        emit_json(summary)
    else:
        print_table("export", ["field", "value"], [(k, v) for k, v in summary.items()])
