"""`reid-stra index build|merge|info`: FAISS indexes saved beside a gallery feature file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reid_stra.cli.options import JsonOutput, limit_faiss_threads
from reid_stra.cli.output import emit_json, info, print_table
from reid_stra.errors import ReidError

if TYPE_CHECKING:
    from reid_stra.retrieval.index import SearchIndex

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
    kind: str | None = typer.Option(
        None,
        "--kind",
        show_default="flat",
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
    on_disk: bool = typer.Option(
        False,
        "--on-disk",
        help="ivf, ivfpq: keep the inverted lists in a file beside the index (feats.faiss.ivfdata), "
        "memory-mapped: search loads only the lists it visits.",
    ),
    trained_only: bool = typer.Option(
        False,
        "--trained-only",
        help="ivf, ivfpq: only train (feats.trained.faiss), for shards built with --shard.",
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        metavar="I/N",
        show_default="none: the whole gallery",
        help="Add the I-th of N contiguous row ranges to the --trained-only index "
        "(feats.shard-I-of-N.faiss); then `reid-stra index merge`.",
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        help="cpu; cuda: the ivf/ivfpq k-means on every GPU (needs faiss-gpu); auto: cuda when "
        "faiss-gpu sees a GPU. The saved index is the same CPU index either way.",
    ),
    as_json: JsonOutput = False,
) -> None:
    """Build an index over FEATURES and save it beside them (reused by `reid-stra search`).

    Larger than RAM: --trained-only once, --shard I/N in separate processes, then `index merge`.
    """
    limit_faiss_threads()
    from reid_stra.retrieval.features import load_features
    from reid_stra.retrieval.index import build_index, default_metric, faiss_gpu_count
    from reid_stra.retrieval.index_shards import build_shard, parse_shard, save_trained
    from reid_stra.retrieval.index_store import index_path, save_index
    from reid_stra.utils.atomic import exclusive_lock

    options = {"nlist": nlist, "nprobe": nprobe, "m": m, "ef_search": ef_search, "pca": pca, "rerank": rerank}
    if shard is not None:
        _refuse_with_shard(kind=kind, metric=metric, on_disk=on_disk, trained_only=trained_only, **options)
        if device != "cpu":
            raise ReidError(
                f"--device {device}: a shard adds vectors on the CPU; train on the GPU with --trained-only"
            )
        feats, meta = load_features(features, as_float32=False, verify=False)  # reads only its rows
        path, built, rows = build_shard(feats, features, meta, *parse_shard(shard))
        result = {"shard": str(path), "rows": list(rows), "vectors": built.count, "kind": built.kind}
        _report(
            f"built {path}", result, as_json, "`reid-stra index merge FEATURES` once every shard is built"
        )
        return
    if device not in ("cpu", "cuda", "auto"):
        raise ReidError(f"--device {device}: choose cpu, cuda or auto")
    feats, meta = load_features(features, as_float32=False)  # converted block by block while adding
    kind, metric = kind or "flat", metric or default_metric(meta)
    options["gpu"] = device == "cuda" or (
        device == "auto" and kind in ("ivf", "ivfpq") and faiss_gpu_count() > 0
    )
    if trained_only:
        path, built = save_trained(feats, features, meta, kind, metric=metric, **options)
        result = {"trained": str(path), "kind": built.kind, "metric": built.metric, "params": built.params}
        _report(
            f"trained {path}", result, as_json, "now `reid-stra index build FEATURES --shard I/N`, each I"
        )
        return
    with exclusive_lock(index_path(features)):
        built = build_index(feats, kind, metric=metric, on_disk=on_disk, **options)
        path = save_index(built, features, meta)
    _report(
        f"built {path}", _saved(path, built), as_json, "`reid-stra search ... --gallery FEATURES` now uses it"
    )


@index_app.command("merge")
def merge(
    features: Path = typer.Argument(..., metavar="FEATURES", help="Gallery feature file (.npy)."),
    shards: int | None = typer.Option(
        None,
        "--shards",
        metavar="N",
        help="Merge the split into N shards; default: the one whose files are there.",
    ),
    as_json: JsonOutput = False,
) -> None:
    """Merge the shards built with `index build --shard I/N` into one on-disk index beside FEATURES."""
    limit_faiss_threads()
    from reid_stra.retrieval.features import load_features
    from reid_stra.retrieval.index_shards import merge_shards

    _, meta = load_features(features, verify=False)  # the shards record the checksum they were built from
    path, merged = merge_shards(features, meta, shards)
    _report(
        f"merged {path}",
        _saved(path, merged),
        as_json,
        "`reid-stra search ... --gallery FEATURES` now uses it",
    )


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
        "index_data": _data_file(index_path(features), saved).get("ivfdata"),
    }
    if as_json:
        emit_json(result)
        return
    _print(f"{features}", result)
    if saved is None:
        info("no saved index: search is exact; build one with `reid-stra index build`")
    elif not result["index_current"]:
        info("[yellow]the saved index is out of date[/] (the features changed); search will rebuild it")


def _refuse_with_shard(**given: object) -> None:
    """A shard is added to the trained index as it is: build options belong to --trained-only."""
    for name, value in given.items():
        if value not in (None, False):
            flag = "--" + name.replace("_", "-")
            raise ReidError(f"{flag}: a shard is added to the trained index as it was trained; "
                            "give build options with --trained-only")  # fmt: skip


def _saved(path: Path, built: SearchIndex) -> dict:
    """What `index build` and `index merge` report about the index they saved at ``path``."""
    from reid_stra.retrieval.index_store import read_description

    return {
        "index": str(path),
        "kind": built.kind,
        "metric": built.metric,
        "vectors": built.count,
        "dim": built.dim,
        "params": built.params,
        "bytes": path.stat().st_size,
        **_data_file(path, read_description(path)),
    }


def _data_file(path: Path, saved: dict | None) -> dict:
    """Where an on-disk index keeps its inverted lists (nothing for an index held in RAM)."""
    if not saved or not saved.get("on_disk"):
        return {}
    return {"ivfdata": str(path.with_name(saved["ivfdata"])), "ivfdata_bytes": saved["ivfdata_bytes"]}


def _report(title: str, result: dict, as_json: bool, next_step: str) -> None:
    if as_json:
        emit_json(result)
        return
    _print(title, result)
    info(next_step)


def _print(title: str, result: dict) -> None:
    print_table(title, ["", "value"], [(key, _plain(value)) for key, value in result.items()])


def _plain(value: object) -> object:
    """Nested values as ``key value, ...`` text, not Python's repr of a dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items() if v is not None) or "-"
    return value
