"""`reid-stra search`: top-k gallery matches of query images, as a table, JSON, CSV or picture."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Annotated

import typer

from reid_stra.cli.options import (
    BackendChoice,
    BatchSize,
    Device,
    IdPattern,
    IdsFile,
    JsonOutput,
    PrecisionChoice,
    Rerank,
    RerankK1,
    RerankK2,
    RerankLambda,
    Workers,
    chosen_precision,
    limit_faiss_threads,
    model_option,
    weights_option,
)
from reid_stra.cli.output import emit_json, info, print_table, printable, progress_wanted

# A ranked-list picture with more rows than this is unreadable (and huge); the rest are listed only.
MAX_PICTURE_ROWS = 100
CSV_COLUMNS = [
    "query",
    "query_id",
    "query_camera",
    "rank",
    "distance",
    "gallery_index",
    "path",
    "id",
    "camera",
]


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("search")(search)


def search(
    queries: list[str] | None = typer.Argument(
        None, metavar="QUERY", help="Query images, folders, globs or text files of paths."
    ),
    gallery: Path = typer.Option(
        ..., "--gallery", help="Gallery feature file from `reid-stra extract` (.npy)."
    ),
    top_k: int = typer.Option(10, "--top-k", help="Matches per query (clamped to the gallery size)."),
    index: str = typer.Option(
        "auto",
        "--index",
        help="auto (the saved index if current, else exact), flat (exact), ivf, hnsw or ivfpq "
        "(built and saved beside the gallery if none is saved; a saved index of another kind is "
        "kept unless --rebuild-index).",
    ),
    rebuild_index: bool = typer.Option(
        False, "--rebuild-index", help="Build the --index kind again and replace the saved index with it."
    ),
    nprobe: int | None = typer.Option(
        None,
        "--nprobe",
        show_default="the saved index's, else nlist/256 (at least 8)",
        help="IVF cells visited per query (more: slower, better).",
    ),
    ef_search: int | None = typer.Option(
        None,
        "--ef-search",
        show_default="the saved index's, else 64",
        help="HNSW search breadth (more: slower, better).",
    ),
    query_features: Path | None = typer.Option(
        None,
        "--query-features",
        show_default="none",
        help="Use this feature file (.npy) as the queries instead of images.",
    ),
    model: Annotated[
        str | None, model_option("the gallery's model", "Model for the query images (must be the gallery's).")
    ] = None,
    weights: Annotated[
        Path | None,
        weights_option("the gallery's weights", "Checkpoint for the query images (must be the gallery's)."),
    ] = None,
    show: Path | None = typer.Option(
        None, "--show", show_default="none", help="Draw the ranked lists into this PNG."
    ),
    as_json: JsonOutput = False,
    csv_out: str | None = typer.Option(
        None, "--csv", show_default="none", help="Write the results as CSV to this file ('-': stdout)."
    ),
    device: Device = "auto",
    precision: PrecisionChoice = "auto",
    backend: BackendChoice = "auto",
    batch_size: BatchSize = 64,
    workers: Workers = 2,
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave unreadable query images out instead of failing."
    ),
    ids_file: IdsFile = None,
    id_pattern: IdPattern = None,
    rerank: Rerank = False,
    k1: RerankK1 = 20,
    k2: RerankK2 = 6,
    lambda_value: RerankLambda = 0.3,
) -> None:
    """Find the closest gallery images for each query (rank, distance, path, id, camera)."""
    limit_faiss_threads()
    from reid_stra.errors import ReidError
    from reid_stra.retrieval.features import load_features
    from reid_stra.retrieval.ids import id_source
    from reid_stra.retrieval.search import check_search_request, extract_query_features, search_gallery

    if bool(queries) == (query_features is not None):
        raise ReidError("QUERY...: give query images or --query-features FILE (exactly one of them)")
    if as_json and csv_out == "-":
        raise ReidError("--json and --csv - both write to stdout; choose one (or --csv FILE)")
    ids = id_source(ids_file, id_pattern)
    from reid_stra.metrics.rerank import RerankSettings

    settings = RerankSettings(k1, k2, lambda_value) if rerank else None
    if show is not None and show.suffix.lower() != ".png":
        raise ReidError(f"--show {show}: the picture is written as PNG; use a name ending in .png")
    from reid_stra.retrieval.features import features_path

    gallery = features_path(gallery, "--gallery")
    if query_features is not None:
        query_features = features_path(query_features, "--query-features")
    gallery_features, gallery_meta = load_features(gallery)
    check_search_request(gallery_meta, top_k=top_k, index=index, nprobe=nprobe, ef_search=ef_search)
    if query_features is not None:
        if model is not None or weights is not None:
            raise ReidError(
                "--model/--weights apply to query images; --query-features already holds features"
            )
        feats, query_meta = load_features(query_features)
        query_name = str(query_features)
    else:
        feats, query_meta = extract_query_features(
            queries or [],
            gallery_meta,
            model=model,
            weights=weights,
            device=device,
            batch_size=batch_size,
            workers=workers,
            skip_bad=skip_bad,
            precision=chosen_precision(precision, device).name,
            backend=backend,
            ids=ids,
            notice=info,
            progress=progress_wanted(),
        )
        query_name = "the query images"
        for item in query_meta.skipped:
            info(f"[yellow]skipped:[/] {item['reason']}")
    outcome = search_gallery(
        feats,
        query_meta,
        gallery,
        top_k=top_k,
        index=index,
        gallery=(gallery_features, gallery_meta),
        nprobe=nprobe,
        ef_search=ef_search,
        query_name=query_name,
        rebuild_index=rebuild_index,
        rerank=settings,
        notice=info,
        progress=progress_wanted(),
    )
    results = outcome.results
    if csv_out is not None:
        _write_csv(results, csv_out)
    if as_json:
        emit_json(
            {
                "gallery": str(gallery),
                "top_k": top_k,
                "index": outcome.index,
                "results": [r.to_dict() for r in results],
                "skipped": query_meta.skipped,
            }
        )
    elif csv_out != "-":
        for result in results:
            title = f"query {printable(result.query)}" + _id_text(result.pid, result.camid)
            rows = [(m.rank, m.distance, m.path, m.pid, m.camid) for m in result.matches]
            print_table(title, ["rank", "distance", "path", "id", "camera"], rows)
        info(f"answered by {_index_text(outcome.index)}; distance = {outcome.index['distance']}")
    if show is not None:  # after the table, so "wrote ..." is the last line
        _draw(results, show)


def _index_text(index: dict) -> str:
    kinds = {"flat": "exact search", "rerank": "exact search with k-reciprocal re-ranking"}
    kind = kinds.get(index["kind"], f"the {index['kind']} index")
    params = ", ".join(f"{key} {value}" for key, value in index["params"].items() if value is not None)
    return f"{kind} (metric {index['metric']}{', ' + params if params else ''})"


def _id_text(pid: int | None, camid: int | None) -> str:
    return "" if pid is None else f" (id {pid}, camera {camid})"


def _write_csv(results: list, target: str) -> None:
    from reid_stra.utils.atomic import atomic_write_with

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for m in r.matches:
            writer.writerow(
                [r.query, r.pid, r.camid, m.rank, f"{m.distance:.6f}", m.index, m.path, m.pid, m.camid]
            )
    # surrogateescape: file names that are not valid UTF-8 come back out as their original bytes.
    data = buffer.getvalue().encode("utf-8", errors="surrogateescape")
    if target == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write_with(target, lambda handle: handle.write(data))
        info(f"wrote {target}")


def _draw(results: list, out: Path) -> None:
    from reid_stra.viz.ranklist import save_search_ranklist

    drawn = results[:MAX_PICTURE_ROWS]
    if len(results) > len(drawn):
        info(f"--show: drawing the first {len(drawn)} of {len(results)} queries")
    save_search_ranklist(drawn, out)
    info(f"wrote {out}")
