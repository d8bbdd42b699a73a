"""`reid-stra explain`: heat maps of where each StRA mode looks, over the user's own crops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reid_stra.cli.options import (
    Device,
    JsonOutput,
    PrecisionChoice,
    WeightsFile,
    chosen_precision,
    model_option,
)
from reid_stra.cli.output import emit_json, info, print_table


def explain(
    images: list[Path] = typer.Argument(
        ..., metavar="IMAGE", help="Person crops (files or folders) to explain."
    ),
    out: Path = typer.Option(
        Path("modes.png"),
        "-o",
        "--out",
        "--output",
        help="PNG to write: one figure per crop (OUT_1_NAME.png, OUT_2_NAME.png... for several crops).",
    ),
    model: Annotated[
        str | None, model_option("the one named in --weights, or the shipped StRA model", "StRA model name.")
    ] = None,
    weights: WeightsFile = None,
    block: str | None = typer.Option(
        None, "--block", help="Only this StRA block (e.g. layer4.2 or features.17); default: every block."
    ),
    max_images: int = typer.Option(8, "--max-images", min=1, help="Draw at most this many images."),
    device: Device = "auto",
    precision: PrecisionChoice = "auto",
    as_json: JsonOutput = False,
) -> None:
    """Draw each StRA mode's pooling weights as a heat map over person crops, one panel per mode."""
    from reid_stra.errors import ReidError
    from reid_stra.models import load_model
    from reid_stra.models.shipped import default_stra_model_name
    from reid_stra.retrieval.inputs import expand_inputs
    from reid_stra.viz.explain import explain_modes
    from reid_stra.viz.modes import CAPTION

    if model is None and weights is None:
        model = default_stra_model_name()  # the default model may have no StRA to explain
    if out.suffix.lower() != ".png":
        raise ReidError(f"-o {out}: the mode figures are PNG files; give a name ending in .png")
    if weights is not None and weights.suffix.lower() in (".onnx", ".torchscript"):
        raise ReidError(
            f"--weights {weights}: explain reads the StRA layers' pooling maps from the PyTorch model; "
            "pass the .pth weights the export was made from"
        )
    paths = expand_inputs([str(p) for p in images])[:max_images]
    net, meta = load_model(model, None if weights is None else str(weights), device=device)
    try:
        explained = explain_modes(
            net, meta, paths, out, block=block, precision=chosen_precision(precision, device).name
        )
    except ReidError as exc:
        if block is not None and str(exc).startswith(f"block {block}:"):
            raise ReidError(f"--{exc}") from None
        raise
    figures, summary = explained.figures, explained.summary
    if as_json:
        emit_json(
            {
                "figures": [str(f) for f in figures],
                "caption": CAPTION,
                "model": meta["model"],
                "weights": meta["weights"],
                "images": paths,
                "modes": summary,
            }
        )
        return
    print_table(
        f"StRA modes of {meta['model']} over {len(paths)} crops (row/col: centre of attention, 0 = top/left; "
        "spread: 1 = uniform; peak motion: cells its peak moves, 0 = stuck; border: share of weight on "
        f"border cells, {summary[0]['border_share']:.2f} if uniform)",
        ["block", "mode", "row", "col", "spread", "peak motion", "border"],
        [(m["block"], m["mode"] + 1, m["row"], m["col"], m["spread"], m["peak_motion"], m["border_mass"])
         for m in summary],
    )  # fmt: skip
    info(CAPTION)
    info("wrote " + ", ".join(str(f) for f in figures))


def register(app: typer.Typer) -> None:
    """Add `explain` to the app."""
    app.command("explain")(explain)
