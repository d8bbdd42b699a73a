"""`reid-stra models`: the model zoo with our complexity numbers beside the paper's."""

from __future__ import annotations

import typer

from reid_stra.cli.options import JsonOutput
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("models")(models)


def models(
    name: list[str] = typer.Option(
        [], "--model", "-m", help="Only this model (repeatable); default: every registered model."
    ),
    flops: bool = typer.Option(
        True,
        "--flops/--no-flops",
        help="Measure params and FLOPs (one forward per model; a few seconds in all).",
    ),
    size: str = typer.Option("256x128", "--size", help="Input HEIGHTxWIDTH for the FLOPs (multiples of 32)."),
    as_json: JsonOutput = False,
) -> None:
    """List the models: params and FLOPs (multiply-accumulates, the paper's convention), paper numbers."""
    from reid_stra.models.catalog import describe_models, parse_size
    from reid_stra.models.registry import get_entry, list_models
    from reid_stra.utils.progress import task_progress

    input_size = parse_size(size)
    names = list(dict.fromkeys(name)) or list_models()
    for model_name in names:
        get_entry(model_name)  # unknown names fail before any work
    with task_progress(
        "measuring models" if flops else "building models", len(names), unit="model", show=progress_wanted()
    ) as advance:
        rows = describe_models(names, input_size=input_size, complexity=flops, advance=advance)
    if as_json:
        emit_json(
            {
                "input_size": list(input_size),
                "flops_convention": "conv+linear MACs, eval graph",
                "models": rows,
            }
        )
        return
    height, width = input_size
    print_table(
        f"models: ours beside the paper's (FLOPs = conv/linear multiply-accumulates at {height}x{width})",
        ["model", "params M", "GFLOPs", "dim", "paper M/G", "paper mAP/R1", "shipped"],
        [
            [
                row["name"],
                _num(row["params_m"], 2),
                _num(row["gflops"], 2),
                row["embedding_dim"],
                f"{_num(row['paper'].get('params_m'), 2)}/{_num(row['paper'].get('gflops'), 2)}",
                f"{_num(row['paper'].get('mAP'), 1)}/{_num(row['paper'].get('rank1'), 1)}",
                ("yes (default)" if row["default"] else "yes") if row["shipped_weights"] else "no",
            ]
            for row in rows
        ],
    )
    print_table(
        "what each model is", ["model", "description"], [[row["name"], row["description"]] for row in rows]
    )
    carded = [row for row in rows if row["accuracy"]]
    if carded:
        print_table(
            "shipped weights: accuracy on people never trained on (mAP / rank-1)",
            ["model", "in-domain", "data", "cross-domain", "data"],
            [
                [
                    row["name"],
                    *_domain_cells(row["accuracy"], "in_domain"),
                    *_domain_cells(row["accuracy"], "cross_domain"),
                ]
                for row in carded
            ],
        )
    if not flops:
        info("params/FLOPs not measured (--no-flops)")


def _domain_cells(accuracy: dict, domain: str) -> list[str]:
    numbers = accuracy.get(domain)
    if not numbers:
        return ["-", "-"]
    return [f"{numbers['mAP']:.3f} / {numbers['rank1']:.3f}", str(numbers.get("data", ""))]


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
