"""`reid-stra index build|info`: FAISS indexes saved beside a gallery feature file."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import JsonOutput
from reid_stra.cli.output import emit_json, info, print_table

index_app = typer.Typer(
    help="Build or inspect the search index saved beside a feature file (feats.faiss).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.add_typer(index_app, name="index")


@index_app.command("build")
def build(
    features: Path = typer.Argument(
        ..., metavar="FEATURES", help="Gallery feature file from `reid-stra extract` (.npy)."
    ),
    kind: str = typer.Option(
        "flat",
        "--kind",
        help="flat (exact), ivf (inverted lists), hnsw (graph) or ivfpq (compressed + re-ranked; "
        "the fast choice for large galleries).",
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="ip (cosine) or l2; default: ip for L2-normalized features, else l2."
    ),
    nlist: int | None = typer.Option(
        None, "--nlist", help="IVF cells; default about 4 x sqrt(N) (ivf) or sqrt(N) (ivfpq)."
    ),
    nprobe: int | None = typer.Option(
        None, "--nprobe", help="IVF cells visited per query; stored as the default."
    ),
    m: int | None = typer.Option(
        None, "--m", help="HNSW links per node (default 32) or IVF-PQ 4-bit sub-quantizers (default dim/8)."
    ),
    ef_search: int | None = typer.Option(None, "--ef-search", help="HNSW search breadth; default 64."),
    pca: int | None = typer.Option(
        None,
        "--pca",
        show_default="none",
        help="Index PCA-reduced vectors of this dimension (e.g. 128: much faster HNSW builds); "
        "results are re-ranked with the exact features.",
    ),
    rerank: int | None = typer.Option(
        None,
        "--rerank",
        help="Compressed indexes (ivfpq, --pca): re-score k x RERANK candidates exactly; default 10.",
    ),
    as_json: JsonOutput = False,
) -> None:
    """Build an index over FEATURES and save it beside them (reused by `reid-stra search`)."""
    from reid_stra.retrieval.features import load_features
    from reid_stra.retrieval.index import build_index, default_metric
    from reid_stra.retrieval.index_store import index_path, save_index
    from reid_stra.utils.atomic import exclusive_lock

    feats, meta = load_features(features, as_float32=False)  # converted block by block while adding
    with exclusive_lock(index_path(features)):
        built = build_index(
            feats,
            kind,
            metric=metric or default_metric(meta),
            nlist=nlist,
            nprobe=nprobe,
            m=m,
            ef_search=ef_search,
            pca=pca,
            rerank=rerank,
        )
        path = save_index(built, features, meta)
    result = {
        "index": str(path),
        "kind": built.kind,
        "metric": built.metric,
        "vectors": built.count,
        "dim": built.dim,
        "params": built.params,
        "bytes": path.stat().st_size,
    }
    if as_json:
        emit_json(result)
        return
    _print(f"built {path}", result)
    info("`reid-stra search ... --gallery FEATURES` now uses it")


@index_app.command("info")
def show_info(
    features: Path = typer.Argument(..., metavar="FEATURES", help="Gallery feature file (.npy)."),
    as_json: JsonOutput = False,
) -> None:
    """Describe a feature file and the index saved beside it (and whether it is current)."""
    from reid_stra.retrieval.features import load_features
    from reid_stra.retrieval.index_store import index_is_current, index_path, read_index_meta

    _, meta = load_features(features)
    saved = read_index_meta(features)
    result = {
        "features": str(features),
        "vectors": meta.count,
        "dim": meta.embedding_dim,
        "model": meta.model,
        "normalized": meta.normalized,
        "images_with_ids": meta.images_with_ids,
        "index": str(index_path(features)) if saved else None,
        "index_kind": saved["kind"] if saved else None,
        "index_metric": saved["metric"] if saved else None,
        "index_params": saved["params"] if saved else None,
        "index_current": index_is_current(saved, features, meta) if saved else None,
    }
    if as_json:
        emit_json(result)
        return
    _print(f"{features}", result)
    if saved is None:
        info("no saved index: search is exact; build one with `reid-stra index build`")
    elif not result["index_current"]:
        info("[yellow]the saved index is out of date[/] (the features changed); search will rebuild it")


def _print(title: str, result: dict) -> None:
    print_table(title, ["", "value"], [(key, _plain(value)) for key, value in result.items()])


def _plain(value: object) -> object:
    """Nested values as ``key value, ...`` text, not Python's repr of a dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items() if v is not None) or "-"
    return value
