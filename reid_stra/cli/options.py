"""Options several commands share, declared once (typer ``Annotated`` aliases).

A command uses ``as_json: JsonOutput = False``; where the default differs by command the command
gives it (``batch_size: BatchSize = 64``). ``--model``/``--weights`` say their default per command
(``model_option("the gallery's")``) since what they fall back to differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

JsonOutput = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
Workers = Annotated[
    int, typer.Option("--workers", help="Processes decoding images in parallel (0: in this process).")
]
DatasetRoot = Annotated[
    Path | None, typer.Option("--root", show_default="none", help="Folder holding the dataset.")
]
DataOptions = Annotated[
    list[str],
    typer.Option(
        "--data-opt", help="Dataset reader option KEY=VALUE (repeatable), e.g. variant=detected for cuhk03."
    ),
]

_SHIPPED_MODEL = "the one named in --weights, or the shipped model"


def model_option(default: str = _SHIPPED_MODEL, help: str = "Model name (see `reid-stra models`).") -> Any:
    """``--model``; ``default`` says what an omitted option falls back to in this command."""
    return typer.Option("--model", show_default=default, help=help)


def weights_option(
    default: str = "the shipped weights of --model",
    help: str = "Checkpoint: a `reid-stra train` output, a torchreid ResNet-50 file or an exported .onnx.",
) -> Any:
    """``--weights``; ``default`` says what an omitted option falls back to in this command."""
    return typer.Option("--weights", show_default=default, help=help)


ModelName = Annotated[str | None, model_option()]
WeightsFile = Annotated[Path | None, weights_option()]

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
        "except training in bf16 where the CPU has bf16 units (AMX/AVX512-BF16), which bf16 needs.",
    ),
]
BackendChoice = Annotated[
    str,
    typer.Option(
        "--backend",
        help="auto, pytorch or onnxruntime: what runs the model. auto: ONNX Runtime on a CPU at fp32 when "
        "it is installed (the weights are exported once into a cache), else PyTorch.",
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

# k-reciprocal re-ranking (evaluate, search); the library's defaults: metrics.rerank.RerankSettings.
Rerank = Annotated[
    bool,
    typer.Option(
        "--rerank",
        help="k-reciprocal re-ranking (Zhong et al. 2017) over the query and gallery images alone "
        "(no labels): the largest gain measured on cameras the model never saw.",
    ),
]
RerankK1 = Annotated[int, typer.Option("--k1", help="Re-ranking: k of the k-reciprocal neighbour sets.")]
RerankK2 = Annotated[
    int, typer.Option("--k2", help="Re-ranking: neighbours averaged in the local query expansion.")
]
RerankLambda = Annotated[
    float,
    typer.Option("--lambda", help="Re-ranking: weight of the original distance (1 - weight of Jaccard)."),
]


def chosen_precision(requested: str, device: str, *, training: bool = False):
    """Resolve ``--precision`` for ``device`` and say once which arithmetic runs and why."""
    from reid_stra.cli.output import info
    from reid_stra.utils.device import resolve_device
    from reid_stra.utils.precision import resolve_precision

    precision = resolve_precision(requested, resolve_device(device), training=training)
    info(precision.describe())
    return precision


def limit_faiss_threads() -> None:
    """FAISS on this process's cores: set once by each command that searches, re-ranks or clusters."""
    from reid_stra.metrics.neighbors import configure_faiss_threads

    configure_faiss_threads()
