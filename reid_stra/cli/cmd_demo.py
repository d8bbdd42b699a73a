"""`reid-stra demo`: the whole pipeline on built-in synthetic data, in a few minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import JsonOutput, Workers
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def demo(
    out: Path = typer.Option(
        Path("demo_output"), "-o", "--out", "--output", help="Folder for every output of the demo."
    ),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Training epochs on the synthetic data."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    workers: Workers = 2,
    as_json: JsonOutput = False,
) -> None:
    """Make synthetic data, train, evaluate, embed a gallery, search a query and draw the results."""
    from reid_stra.demo import run_demo

    result = run_demo(
        out, epochs=epochs, device=device, workers=workers, notice=info, progress=progress_wanted()
    )
    if as_json:
        emit_json(result)
        return
    before, after = result["metrics_before"], result["metrics_after"]
    print_table(
        "Demo: synthetic query/gallery, standard protocol",
        ["", "mAP", "rank-1", "rank-5", "mINP"],
        [
            ("before training", before["mAP"], before["rank1"], before["rank5"], before["mINP"]),
            ("after training", after["mAP"], after["rank1"], after["rank5"], after["mINP"]),
        ],
    )
    print_table("Where everything went", ["output", "path"], list(result["outputs"].items()))
    info(f"demo finished in {result['seconds']:.0f} s")


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""
    app.command("demo")(demo)
