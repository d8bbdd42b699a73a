"""Options several commands share, declared once (typer ``Annotated`` aliases)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# `str | None`: commands pass "auto"; `train` passes None (the config file's value, else auto).
Device = Annotated[
    str | None, typer.Option("--device", show_default="auto", help="auto, cpu, cuda or cuda:N.")
]
PrecisionChoice = Annotated[
    str | None,
    typer.Option(
        "--precision",
        show_default="auto",
        help="auto, fp32, bf16 or fp16; says which it chose and why. auto: fp16 on CUDA; on a CPU fp32, "
        "except training in bf16 where AMX units make it ~2x faster; bf16 needs AMX/AVX512-BF16 or a GPU.",
    ),
]
IdsFile = Annotated[
    Path | None,
    typer.Option(
        "--ids",
        help="CSV of path,pid,camid rows giving your images' person and camera ids (paths relative "
        "to the CSV; a bare file name matches in any folder). Default: parsed from Market-style names.",
    ),
]
IdPattern = Annotated[
    str | None,
    typer.Option(
        "--id-pattern",
        help="Regex with named groups pid and camid, searched in each file name, e.g. "
        "'id(?P<pid>\\d+)_cam(?P<camid>\\d+)'. Default: Market-style names (0002_c1s1_...).",
    ),
]


def chosen_precision(requested: str, device: str, *, training: bool = False):
    """Resolve ``--precision`` for ``device`` and say once which arithmetic runs and why."""
    from reid_stra.cli.output import info
    from reid_stra.utils.device import resolve_device
    from reid_stra.utils.precision import resolve_precision

    precision = resolve_precision(requested, resolve_device(device), training=training)
    info(precision.describe())
    return precision
