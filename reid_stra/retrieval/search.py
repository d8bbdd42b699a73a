"""Search a gallery feature file with query images (or query features).

Queries are embedded with exactly the gallery's model, weights and preprocessing, read from
its sidecar; anything the user passes that disagrees (another model, other weights) is an
error, because distances between features of two different models are meaningless.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.metrics.distance import prepare_pair
from reid_stra.metrics.rerank import RerankSettings, k_reciprocal_distance_chunks
from reid_stra.retrieval.features import FeatureMeta, check_compatible, features_path, load_features
from reid_stra.retrieval.ids import IdSource
from reid_stra.retrieval.index import INDEX_KINDS, SearchIndex, resolve_params
from reid_stra.retrieval.index_store import load_or_build_index
from reid_stra.utils.notice import Notice, silent


@dataclass
class Match:
    rank: int
    distance: float
    index: int  # row in the gallery feature file
    path: str
    pid: int | None
    camid: int | None


@dataclass
class QueryResult:
    query: str
    pid: int | None
    camid: int | None
    matches: list[Match] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check_search_request(
    gallery_meta: FeatureMeta, *, top_k: int, index: str, nprobe: int | None, ef_search: int | None
) -> None:
    """Refuse a search that cannot run before any query is embedded (a bad --top-k, --index,
    --nprobe, --ef-search, or an index kind the gallery is too small for)."""

    if top_k < 1:
        raise ReidError(f"--top-k {top_k}: must be at least 1")
    for flag, value in (("--nprobe", nprobe), ("--ef-search", ef_search)):
        if value is not None and value < 1:  # rejected even where the index kind ignores it
            raise ReidError(f"{flag} {value}: must be at least 1")
    if index == "auto":
        return
    if index not in INDEX_KINDS:
        raise unknown_name_error("--index kind", index, ("auto", *INDEX_KINDS))
    if index != "flat":
        count, dim = gallery_meta.count, gallery_meta.embedding_dim
        resolve_params(index, count, dim, kind_option="--index", nprobe=nprobe, ef_search=ef_search)


@dataclass
class SearchOutcome:
    """The ranked matches of each query, and the index that produced them (``SearchIndex.describe``)."""

    results: list[QueryResult]
    index: dict[str, Any]


def extract_query_features(
    query_inputs: Sequence[str | os.PathLike],
    gallery_meta: FeatureMeta,
    *,
    model: str | None = None,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
    skip_bad: bool = False,
    progress: bool = True,
    precision: str = "fp32",
    backend: str = "auto",
    ids: IdSource | None = None,
    notice: Notice | None = None,
) -> tuple[np.ndarray, FeatureMeta]:
    """Embed the query images the way the gallery was embedded; returns ``(features, meta)``.
    ``backend="auto"`` runs the gallery's backend (the same numbers, so ties rank alike); another
    one may be asked for: the same weights give the same features in either, to 1e-4.

    ``precision`` (resolved) may differ from the gallery's: bf16 and fp32 features of one model
    live in the same space (their measured cosine: BENCHMARKS.md "Precision")."""
    # Lazy: searching with query feature files never loads a model or torchvision.
    from reid_stra.deploy.backend import load_inference_model, onnxruntime_available
    from reid_stra.retrieval.extract import Preprocess, extract
    from reid_stra.retrieval.inputs import expand_inputs

    if model is not None and gallery_meta.model is not None and model != gallery_meta.model:
        raise ReidError(
            f"--model {model}: the gallery features were made with '{gallery_meta.model}'; "
            "search with the same model (omit --model to use the gallery's) or re-extract the gallery"
        )
    if weights is None and gallery_meta.weights and not Path(gallery_meta.weights).exists():
        raise ReidError(
            f"the gallery's weights {gallery_meta.weights} no longer exist; pass --weights with the same "
            "checkpoint (or give --query-features)"
        )
    paths = expand_inputs(query_inputs, option="QUERY")
    gallery_backend = gallery_meta.backend
    if str(backend).strip().lower() == "auto" and (
        gallery_backend == "pytorch" or (gallery_backend == "onnxruntime" and onnxruntime_available())
    ):
        backend = gallery_backend
    net, info = load_inference_model(
        model or gallery_meta.model,
        weights if weights is not None else gallery_meta.weights,
        device=device,
        backend=backend,
        precision=precision,
        input_size=tuple(gallery_meta.input_size),  # type: ignore[arg-type]
    )
    precision = info["precision"]
    if notice is not None:
        notice(info["backend_reason"])
    if gallery_meta.weights_sha256 and info.get("weights_sha256") != gallery_meta.weights_sha256:
        raise ReidError(
            f"--weights {info.get('weights')}: sha256 {str(info.get('weights_sha256'))[:12]} is not the "
            f"checkpoint the gallery was extracted with ({gallery_meta.weights_sha256[:12]}); "
            "use the same weights or re-extract the gallery"
        )
    preprocess = Preprocess.from_meta(gallery_meta, precision)
    result = extract(
        net,
        paths,
        preprocess,
        batch_size=batch_size,
        workers=workers,
        device=device,
        skip_bad=skip_bad,
        progress=progress,
    )
    kept = [paths[i] for i in result.kept]
    id_source = ids or IdSource()
    parsed = id_source.parse(kept)
    if notice is not None and (line := parsed.summary(id_source.description)) is not None:
        notice(line)
    meta = FeatureMeta.from_model_info(
        info,
        kept,
        pids=parsed.pids,
        camids=parsed.camids,
        input_size=gallery_meta.input_size,
        normalized=gallery_meta.normalized,
        flip=gallery_meta.flip,
        precision=precision,
    )
    meta.embedding_dim, meta.count = int(result.features.shape[1]), len(kept)
    meta.skipped = [{"path": path, "reason": reason} for path, reason in result.failures]
    return result.features, meta


def search_gallery(
    query_features: np.ndarray,
    query_meta: FeatureMeta,
    gallery_file: str | os.PathLike,
    *,
    top_k: int = 10,
    index: str = "auto",
    gallery: tuple[np.ndarray, FeatureMeta] | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    query_name: str = "query features",
    rebuild_index: bool = False,
    rerank: RerankSettings | None = None,
    progress: bool = True,
    notice: Notice | None = None,
) -> SearchOutcome:
    """Top-``top_k`` gallery matches of every query row (closest first), and which index answered.

    A saved index of another kind is used or replaced only as ``load_or_build_index`` says.
    ``rerank`` ranks by k-reciprocal re-ranked distances over the whole gallery instead (no
    labels; exact, so no index): the one test-time tool that helps most on cameras the model
    never saw (README, "On cameras it never saw"), at the cost of neighbour lists over the gallery."""
    notice = notice or silent
    gallery_file = features_path(gallery_file)
    gallery_features, gallery_meta = gallery or load_features(gallery_file)
    check_compatible(query_meta, gallery_meta, query_name, str(gallery_file))
    check_search_request(gallery_meta, top_k=top_k, index=index, nprobe=nprobe, ef_search=ef_search)
    if top_k > gallery_meta.count:
        notice(f"--top-k {top_k}: the gallery has only {gallery_meta.count} images; showing all of them")
        top_k = gallery_meta.count
    if rerank is not None:
        distances, indices = reranked_neighbors(query_features, gallery_features, top_k, rerank)
        described = {
            "kind": "rerank",
            "metric": "euclidean",
            "params": asdict(rerank),
            "distance": "k-reciprocal re-ranked distance (Zhong et al. 2017)",
        }
        return SearchOutcome(_results(query_meta, gallery_meta, distances, indices), described)
    searcher: SearchIndex = load_or_build_index(
        gallery_file,
        index,
        features=gallery_features,
        meta=gallery_meta,
        nprobe=nprobe,
        ef_search=ef_search,
        rebuild=rebuild_index,
        progress=progress,
        kind_option="--index",
        notice=notice,
    )
    distances, indices = searcher.search(query_features, top_k)
    return SearchOutcome(_results(query_meta, gallery_meta, distances, indices), searcher.describe())


def reranked_neighbors(
    query_features: np.ndarray, gallery_features: np.ndarray, top_k: int, settings: RerankSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``top_k`` ``(distances, indices)`` under k-reciprocal re-ranking of L2-normalized
    features (the evaluation protocol's Euclidean distance); ties keep gallery order."""
    query, gallery = prepare_pair(query_features, np.asarray(gallery_features), "euclidean", normalize=True)
    top_k = min(top_k, len(gallery))
    distances = np.empty((len(query), top_k), np.float32)
    indices = np.empty((len(query), top_k), np.int64)
    for start, block in k_reciprocal_distance_chunks(query, gallery, "euclidean", **asdict(settings)):
        order = np.argsort(block, axis=1, kind="stable")[:, :top_k]
        indices[start : start + len(block)] = order
        distances[start : start + len(block)] = np.take_along_axis(block, order, axis=1)
    return distances, indices


def _results(
    query_meta: FeatureMeta, gallery_meta: FeatureMeta, distances: np.ndarray, indices: np.ndarray
) -> list[QueryResult]:
    results = []
    for row, path in enumerate(query_meta.paths):
        result = QueryResult(path, _at(query_meta.pids, row), _at(query_meta.camids, row))
        for rank, (distance, index_) in enumerate(zip(distances[row], indices[row], strict=True), start=1):
            if index_ < 0:
                break
            g = int(index_)
            result.matches.append(
                Match(
                    rank,
                    float(distance),
                    g,
                    gallery_meta.paths[g],
                    _at(gallery_meta.pids, g),
                    _at(gallery_meta.camids, g),
                )
            )
        results.append(result)
    return results


def _at(values: list[int | None] | None, row: int) -> int | None:
    value = None if values is None else values[row]
    return None if value is None else int(value)
