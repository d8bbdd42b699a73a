"""FAISS indexes over feature files: exact by default, approximate (IVF, HNSW, IVF-PQ) by choice.

Distances returned by :meth:`SearchIndex.search` are always "smaller is closer": ``1 - cosine``
for the inner-product metric (the default for L2-normalized features) and the squared
Euclidean distance for ``l2``.

Building and searching live here; saving beside the features and reuse in
:mod:`reid_stra.retrieval.index_store`; shards built by separate processes and merged into an
on-disk index in :mod:`reid_stra.retrieval.index_shards`; the neighbour search without an index in
:mod:`reid_stra.metrics.neighbors`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.retrieval.features import FeatureMeta
from reid_stra.retrieval.mapped import gather_rows, row_blocks
from reid_stra.utils.progress import task_progress

INDEX_KINDS = ("flat", "ivf", "hnsw", "ivfpq")
METRICS = ("ip", "l2")
_ADD_CHUNK = 65_536
_TRAIN_POINTS_PER_CELL = 40  # k-means sample size per IVF cell (faiss warns below 39)
_MIN_PQ_VECTORS = 1_000
# Which index kinds each build option means something for (rerank: also any kind with --pca).
_OPTION_KINDS = {
    "nlist": ("ivf", "ivfpq"),
    "nprobe": ("ivf", "ivfpq"),
    "m": ("hnsw", "ivfpq"),
    "ef_search": ("hnsw",),
    "rerank": ("ivfpq",),
    "on_disk": ("ivf", "ivfpq"),
}
# k-means rounds for IVF cells: FAISS's 25 costs 2.5x the time for no recall we could measure.
_KMEANS_ITERATIONS = 10


@dataclass
class SearchIndex:
    """A searchable gallery: a FAISS index, or (exact search) just the vectors themselves."""

    kind: str
    metric: str
    count: int
    dim: int
    index: Any = None  # faiss.Index; None: exact brute force over ``vectors``
    vectors: np.ndarray | None = None  # exact vectors (flat search and re-ranking)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def distance(self) -> str:
        """What the distances this index returns mean (the same for every kind of one metric)."""
        return "1 - cosine similarity" if self.metric == "ip" else "squared Euclidean distance"

    def describe(self) -> dict[str, Any]:
        """Which index answered: kind, metric, parameters and what its distance column means."""
        return {
            "kind": self.kind,
            "metric": self.metric,
            "params": dict(self.params),
            "distance": self.distance,
        }

    @property
    def reranked(self) -> bool:
        """Whether the index only proposes candidates that the exact vectors then order."""
        return bool(self.params.get("rerank")) and self.vectors is not None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(distances, indices)`` per query, closest first (k is clamped to the gallery).

        An approximate index may find fewer than ``k`` neighbours; missing slots hold index -1
        and distance inf.
        """
        queries = _as_queries(queries, self.dim)
        k = max(1, min(int(k), self.count))
        if self.index is None:
            scores, indices = faiss.knn(queries, _contiguous(self.vectors), k, _faiss_metric(self.metric))
        elif self.reranked:
            scores, indices = self._search_reranked(queries, k)
        else:
            self._apply_search_params(k)
            scores, indices = self.index.search(queries, k)
        return _to_distances(scores, indices, self.metric), indices.astype(np.int64, copy=False)

    def _apply_search_params(self, k: int) -> None:
        if self.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self.index).nprobe = int(self.params["nprobe"])
        elif self.kind == "hnsw":
            _core(self.index).hnsw.efSearch = max(int(self.params["ef_search"]), k)

    def _search_reranked(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The index proposes ``k * rerank`` candidates; the exact vectors order the final ``k``."""
        wanted = min(self.count, k * int(self.params["rerank"]))
        self._apply_search_params(wanted)
        _, candidates = self.index.search(queries, wanted)
        scores = np.full((len(queries), k), _worst(self.metric), dtype=np.float32)
        indices = np.full((len(queries), k), -1, dtype=np.int64)
        for row, found in enumerate(candidates):
            found = np.sort(found[found >= 0])  # sorted rows: sequential reads from a memory map
            exact = _exact_scores(queries[row], _contiguous(self.vectors[found]), self.metric)
            order = np.argsort(-exact if self.metric == "ip" else exact, kind="stable")[:k]
            scores[row, : len(order)] = exact[order]
            indices[row, : len(order)] = found[order]
        return scores, indices


def build_index(
    features: np.ndarray,
    kind: str = "flat",
    *,
    metric: str = "ip",
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int | None = None,
    ef_search: int | None = None,
    ef_construction: int = 40,
    pca: int | None = None,
    rerank: int | None = None,
    on_disk: bool = False,
    trained_only: bool = False,
    gpu: bool = False,
    seed: int = 0,
    progress: bool = True,
    kind_option: str = "--kind",
) -> SearchIndex:
    """Build an index of ``kind`` over ``features`` (N x D float32).

    ``nlist``: IVF cells (default about 4 sqrt(N) for ivf, sqrt(N) for ivfpq); ``nprobe``: cells
    visited per query (ivfpq: a quarter of them); ``m``: HNSW links per node (default 32) or
    IVF-PQ sub-quantizers of 4 bits each (default D/8); ``ef_search``: HNSW search breadth.
    ``pca``: index PCA-reduced vectors of that dimension (faster to build and search).
    Compressed indexes (ivfpq, or any with ``pca``) only propose ``k * rerank`` candidates
    (default 10) that the exact features then order.

    ``on_disk`` (ivf, ivfpq): an index whose lists can be saved in a file of their own and
    merged (``save_index``): ivfpq then scans its 4-bit codes without fast scan, whose lists
    are packed in blocks that FAISS's on-disk lists cannot hold. ``trained_only``: return the
    trained, empty index (shards are added to copies of it with :func:`add_vectors`). ``gpu``
    (ivf, ivfpq; needs faiss-gpu): the coarse k-means, the part of a large build that grows with
    nlist x sample, runs on every GPU FAISS sees; codebooks, adding and the saved index stay on
    the CPU, so the file is the one a CPU build writes.
    """

    if kind not in INDEX_KINDS:
        raise unknown_name_error("index kind", kind, INDEX_KINDS)
    if metric not in METRICS:
        raise unknown_name_error("metric", metric, METRICS)
    if gpu:
        check_gpu_build(kind)
    count, dim = features.shape
    params = resolve_params(
        kind,
        count,
        dim,
        kind_option=kind_option,
        nlist=nlist,
        nprobe=nprobe,
        m=m,
        ef_search=ef_search,
        ef_construction=ef_construction,
        pca=pca,
        rerank=rerank,
        on_disk=on_disk or None,
    )
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    reduced = params.get("pca") or dim
    # PCA centres the data, which changes inner products but not Euclidean distances, so a
    # reduced index ranks candidates by L2 (the same order as cosine for normalized rows).
    inner_metric = "l2" if params.get("pca") else metric
    index = _empty_index(kind, reduced, inner_metric, params)
    if params.get("pca"):
        transform = faiss.PCAMatrix(dim, reduced)
        index = faiss.IndexPreTransform(transform, index)
    if not index.is_trained:
        extra = 10_000 if kind == "ivfpq" else 0  # PQ codebooks: 16 centres per sub-space
        sample_size = min(count, max(_TRAIN_POINTS_PER_CELL * params.get("nlist", 0), extra, 50 * reduced))
        sample = np.sort(rng.choice(count, size=sample_size, replace=False))
        ivf = faiss.extract_index_ivf(index) if kind in ("ivf", "ivfpq") else None
        if ivf is not None:
            ivf.cp.seed = seed
            ivf.cp.niter = _KMEANS_ITERATIONS
            if gpu:  # the k-means assigns points with this index: a flat one on the GPUs
                flat = faiss.IndexFlatIP(reduced) if inner_metric == "ip" else faiss.IndexFlatL2(reduced)
                on_gpus = faiss.index_cpu_to_all_gpus(flat)  # held here: FAISS keeps only a pointer
                ivf.clustering_index = on_gpus
        index.train(_contiguous(gather_rows(features, sample)))
        if ivf is not None:
            ivf.clustering_index = None  # the GPU copy is not part of what is saved
    built = SearchIndex(kind, metric, 0, dim, index, None, params)
    if not trained_only:
        add_vectors(built, features, progress=progress)
        built.vectors = features if params.get("rerank") else None
    params["build_seconds"] = round(time.perf_counter() - started, 3)
    return built


def add_vectors(
    built: SearchIndex,
    features: np.ndarray,
    start: int = 0,
    stop: int | None = None,
    *,
    progress: bool = True,
) -> None:
    """Add rows ``start:stop`` of ``features`` to ``built``, read in blocks (bounded memory, even
    from a 5 GB file). IVF kinds store each vector under its row number in ``features``, so a
    shard's results name rows of the whole gallery."""
    stop = features.shape[0] if stop is None else stop
    with_ids = built.kind in ("ivf", "ivfpq")  # graph and flat indexes number vectors themselves
    with task_progress(f"building {built.kind} index", stop - start, "vec", show=progress) as advance:
        for first, block in row_blocks(features, _ADD_CHUNK, start, stop):
            if with_ids:
                rows = np.arange(first, first + len(block), dtype=np.int64)
                built.index.add_with_ids(_contiguous(block), rows)
            else:
                built.index.add(_contiguous(block))
            advance(len(block))
    built.count = int(built.index.ntotal)


def _empty_index(kind: str, dim: int, metric: str, params: dict[str, Any]) -> Any:
    fmetric = _faiss_metric(metric)
    if kind == "flat":
        return faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["m"], fmetric)
        index.hnsw.efConstruction = params["ef_construction"]
        return index
    quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
    if kind == "ivf":
        return faiss.IndexIVFFlat(quantizer, dim, params["nlist"], fmetric)
    if params.get("on_disk"):  # fast scan's block-packed lists cannot be kept on disk
        return faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["m"], 4, fmetric)
    # 4-bit codes scanned with SIMD lookups ("fast scan"): far faster than 8-bit PQ; the exact
    # re-ranking that follows makes up for their coarser distances.
    return faiss.IndexIVFPQFastScan(quantizer, dim, params["nlist"], params["m"], 4, fmetric)


def faiss_gpu_count() -> int:
    """GPUs this FAISS can use (0 with faiss-cpu, which has no GPU code)."""
    count = getattr(faiss, "get_num_gpus", None)
    return int(count()) if count is not None else 0


def check_gpu_build(kind: str) -> None:
    """A GPU build needs faiss-gpu and a kind whose training is a k-means."""
    if kind not in ("ivf", "ivfpq"):
        raise ReidError(f"--device cuda: only --kind ivf and ivfpq train on a GPU (their k-means); "
                        f"build --kind {kind} on the CPU")  # fmt: skip
    if faiss_gpu_count() < 1 or not hasattr(faiss, "index_cpu_to_all_gpus"):
        raise ReidError("--device cuda: this FAISS sees no GPU (faiss-cpu is installed, or no CUDA "
                        "device); install faiss-gpu on a CUDA machine, or build on the CPU")  # fmt: skip


def exact_index(features: np.ndarray, metric: str = "ip") -> SearchIndex:
    """Exact search straight over ``features`` (no copy, nothing to build or save)."""
    if metric not in METRICS:
        raise unknown_name_error("metric", metric, METRICS)
    return SearchIndex("flat", metric, features.shape[0], features.shape[1], None, features, {})


def default_metric(meta: FeatureMeta) -> str:
    """Inner product (cosine) for L2-normalized features, Euclidean otherwise."""
    return "ip" if meta.normalized else "l2"


def _pick(given: dict[str, Any], option: str, default: Callable[[], int]) -> int:
    """The user's value when given (0 included, so it is rejected, not silently replaced)."""
    value = given.get(option)
    return default() if value is None else value


def resolve_params(
    kind: str, count: int, dim: int, *, kind_option: str = "--kind", **given: Any
) -> dict[str, Any]:
    """Fill in defaults for ``kind`` and reject values FAISS cannot use, naming the option
    (``kind_option``: how the user chose the kind, ``--kind`` or ``search --index``)."""
    for option, kinds in _OPTION_KINDS.items():
        applies = kind in kinds or (option == "rerank" and bool(given.get("pca")) and kind != "flat")
        if given.get(option) is not None and not applies:
            flag = "--" + option.replace("_", "-")
            raise ReidError(f"{flag}: does not apply to {kind_option} {kind} (it is for {', '.join(kinds)})")
    params: dict[str, Any] = {}
    if kind in ("ivf", "ivfpq"):
        # IVF-PQ scans compact codes very fast, so it affords fewer, larger cells and visiting a
        # quarter of them, which keeps neighbours that straddle cell borders (bench_index.py).
        cells_per_sqrt = 1 if kind == "ivfpq" else 4
        nlist = _pick(
            given,
            "nlist",
            lambda: max(1, min(round(cells_per_sqrt * math.sqrt(count)), count // _TRAIN_POINTS_PER_CELL)),
        )
        if not 1 <= nlist <= count:
            raise ReidError(f"--nlist {nlist}: must be between 1 and the number of vectors ({count})")
        default_nprobe = max(1, nlist // 4) if kind == "ivfpq" else min(nlist, max(8, nlist // 256))
        nprobe = _pick(given, "nprobe", lambda: default_nprobe)
        if nprobe < 1:
            raise ReidError(f"--nprobe {nprobe}: must be at least 1")
        params.update(nlist=int(nlist), nprobe=int(min(nprobe, nlist)))
    if kind == "hnsw":
        m = _pick(given, "m", lambda: 32)
        if not 4 <= m <= 256:
            raise ReidError(f"--m {m}: HNSW links per node must be between 4 and 256")
        ef_search = _pick(given, "ef_search", lambda: 64)
        if ef_search < 1:
            raise ReidError(f"--ef-search {ef_search}: must be at least 1")
        params.update(
            m=int(m), ef_search=int(ef_search), ef_construction=int(given.get("ef_construction") or 40)
        )
    if kind == "ivfpq":
        if count < _MIN_PQ_VECTORS:
            raise ReidError(
                f"{kind_option} ivfpq: needs at least {_MIN_PQ_VECTORS} vectors, got {count}; use flat or ivf"
            )
    pca = given.get("pca")
    if pca is not None:
        if kind == "flat":
            raise ReidError(
                "--pca: exact (flat) search uses the full features; use it with ivf, hnsw or ivfpq"
            )
        if not 1 <= pca < dim:
            raise ReidError(f"--pca {pca}: must be between 1 and the feature dimension {dim} (exclusive)")
        params["pca"] = int(pca)
    if kind == "ivfpq":
        reduced = params.get("pca") or dim
        m = _pick(given, "m", lambda: _largest_divisor(reduced, max(1, reduced // 8)))
        if not 1 <= m <= reduced or reduced % m:
            raise ReidError(f"--m {m}: IVF-PQ sub-quantizers must divide the indexed dimension {reduced}")
        params["m"] = int(m)
    if kind == "ivfpq" or params.get("pca"):
        rerank = _pick(given, "rerank", lambda: 10)
        if rerank < 1:
            raise ReidError(f"--rerank {rerank}: must be at least 1")
        params["rerank"] = int(rerank)
    if given.get("on_disk"):
        params["on_disk"] = True
    return params


# ---------------------------------------------------------------------------------------------
# Helpers


def _core(index: Any) -> Any:
    """The index under a PCA pre-transform (or the index itself)."""
    if isinstance(index, faiss.IndexPreTransform):
        return faiss.downcast_index(index.index)
    return index


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _worst(metric: str) -> float:
    return -np.inf if metric == "ip" else np.inf


def _to_distances(scores: np.ndarray, indices: np.ndarray, metric: str) -> np.ndarray:
    distances = (1.0 - scores) if metric == "ip" else scores.copy()
    distances = distances.astype(np.float32, copy=False)
    distances[indices < 0] = np.inf
    return distances


def _exact_scores(query: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    if metric == "ip":
        return vectors @ query
    return ((vectors - query) ** 2).sum(axis=1)


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ReidError(f"query features have shape {queries.shape}; the gallery's dimension is {dim}")
    return _contiguous(queries)


def _contiguous(array: np.ndarray | None) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def _largest_divisor(number: int, at_most: int) -> int:
    return max(d for d in range(1, at_most + 1) if number % d == 0)
