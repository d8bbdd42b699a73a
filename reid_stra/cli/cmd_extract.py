"""`reid-stra extract`: embed images into a feature file (feats.npy + feats.json sidecar)."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import (
    BackendChoice,
    BatchSize,
    Device,
    IdPattern,
    IdsFile,
    JsonOutput,
    ModelName,
    PrecisionChoice,
    WeightsFile,
    Workers,
    chosen_precision,
)
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("extract")(extract)


def extract(
    inputs: list[str] = typer.Argument(
        ...,
        metavar="INPUT",
        help="Images, folders (searched recursively), globs ('crops/**/*.jpg') or text files listing "
        "one path per line (relative to the list file).",
    ),
    output: Path = typer.Option(
        ..., "-o", "--out", "--output", help="Feature file to write (.npy; the sidecar is .json)."
    ),
    model: ModelName = None,
    weights: WeightsFile = None,
    batch_size: BatchSize = 64,
    workers: Workers = 2,
    device: Device = "auto",
    precision: PrecisionChoice = "auto",
    backend: BackendChoice = "auto",
    flip: bool = typer.Option(False, "--flip", help="Average each image's features with its mirror image's."),
    normalize: bool = typer.Option(
        True, "--normalize/--no-normalize", help="L2-normalize each feature row (the evaluation protocol)."
    ),
    height: int | None = typer.Option(None, "--height", help="Input height in pixels; default: the model's."),
    width: int | None = typer.Option(None, "--width", help="Input width in pixels; default: the model's."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Finish an interrupted extraction into the same file, reusing finished chunks.",
    ),
    chunk_size: int | None = typer.Option(
        None,
        "--chunk-size",
        show_default="the batch size",
        help="Images per saved chunk: a stopped run keeps every finished chunk for --resume.",
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave unreadable images out (listed in the sidecar) instead of failing."
    ),
    dtype: str = typer.Option(
        "float32",
        "--dtype",
        help="How features are stored: float32, or float16 (half the bytes; readers get float32 back).",
    ),
    ids_file: IdsFile = None,
    id_pattern: IdPattern = None,
    as_json: JsonOutput = False,
) -> None:
    """Extract L2-normalized features of person crops into OUTPUT (.npy) plus a .json sidecar.
    Under `torchrun --nproc_per_node N` the images are split over N processes (one GPU each)."""
    from reid_stra.retrieval.embedder import Embedder
    from reid_stra.retrieval.extract_file import check_extract_options, extract_to_file
    from reid_stra.retrieval.features import features_path, sidecar_path
    from reid_stra.retrieval.ids import id_source
    from reid_stra.retrieval.inputs import expand_inputs
    from reid_stra.utils.atomic import ensure_not_being_written
    from reid_stra.utils.distributed import cleanup_distributed, init_distributed

    output = features_path(output, "-o", output=True)
    check_extract_options(batch_size, workers, chunk_size, dtype)  # bad options fail before slow work
    ids = id_source(ids_file, id_pattern)
    paths = expand_inputs(inputs)
    ctx = init_distributed(device)  # one process unless launched by torchrun
    if ctx.is_main:  # a second extract into the same file: said before the model loads
        ensure_not_being_written(output)
    if ctx.enabled:
        device = str(ctx.device)
    arithmetic = chosen_precision(precision, device)
    # The Python API's loader and preprocessing (an ONNX file runs as exported: fp32).
    if backend.strip().lower() == "auto" and (height is not None or width is not None):
        backend = "pytorch"  # the cached export is made at the model's own input size
    embedder = Embedder(model, weights, device=device, precision=arithmetic.name, backend=backend)
    if ctx.is_main:
        info(embedder.info["backend_reason"])
    net, model_info = embedder.model, embedder.info
    default_h, default_w = model_info["cfg"].input_size
    try:
        summary = extract_to_file(
            net,
            model_info,
            paths,
            output,
            resume=resume,
            batch_size=batch_size,
            workers=workers,
            device=device,
            input_size=(default_h if height is None else height, default_w if width is None else width),
            flip=flip,
            normalize=normalize,
            skip_bad=skip_bad,
            precision=embedder.precision.name,
            chunk_size=chunk_size,
            ids=ids,
            notice=info,
            ctx=ctx,
            dtype=dtype,
            progress=progress_wanted(),
        )
    finally:
        cleanup_distributed()
    if summary.meta is None:  # another torchrun rank: rank 0 wrote the file and reports it
        return
    meta = summary.meta
    rate = summary.extracted / summary.seconds if summary.seconds > 0 else 0.0
    result = {
        "features": str(output),
        "sidecar": str(sidecar_path(output)),
        "images": meta.count,
        "dim": meta.embedding_dim,
        "model": meta.model,
        "weights": meta.weights,
        "input_size": meta.input_size,
        "normalized": meta.normalized,
        "flip": meta.flip,
        "precision": meta.precision,
        "dtype": meta.dtype,
        "images_with_ids": meta.images_with_ids,
        "extracted": summary.extracted,
        "reused": summary.reused,
        "processes": len(summary.per_process),
        "images_per_process": summary.per_process,
        "skipped_images": len(meta.skipped),
        "seconds": round(summary.seconds, 3),
        "images_per_second": round(rate, 2),
        "skipped": meta.skipped,
    }
    if as_json:
        emit_json(result)
        return
    rows = [(key, value) for key, value in result.items() if key != "skipped"]
    print_table(f"features of {meta.count} image{'' if meta.count == 1 else 's'}", ["", "value"], rows)
    for item in meta.skipped:
        info(f"[yellow]skipped:[/] {item['reason']}")
