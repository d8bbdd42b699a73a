"""Options several commands share, declared once (typer ``Annotated`` aliases)."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
PrecisionChoice = Annotated[
    str,
    typer.Option(
        "--precision",
        help="auto (fp16 on CUDA, else fp32), fp32, bf16 (CPU with AMX/AVX512-BF16, or GPU) or fp16 (CUDA).",
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
