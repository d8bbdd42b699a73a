"""Search-index benchmark: approximate FAISS indexes vs exact search on a re-ID-shaped gallery.

Gallery: ``--ids`` identity centres (random unit vectors in ``--dim`` dimensions) with
``--views`` noisy views each (cosine about 0.8 to their centre, so about 0.64 between two views
of one person and about 0 between people), L2-normalized, generated in chunks: 50,000 x 20 =
1,000,000 x 512 float32 (2 GB) by default. Queries: ``--queries`` new views of random
identities. The exact top-k (FAISS brute force, :func:`reid_stra.retrieval.index.exact_index`)
is the baseline for both speed and recall@k; every index is built and searched through
:func:`reid_stra.retrieval.index.build_index` exactly as ``reid-stra index build`` does.

Each ``--configs`` item is ``kind[:key=value,...]`` with build_index's options, e.g.
``hnsw:pca=128,m=32,ef_search=64`` or ``ivf:nlist=4096,nprobe=16``.

    .venv/bin/python -m benchmarks.bench_index                     # flat vs ivfpq (about 4 minutes)
    .venv/bin/python -m benchmarks.bench_index --configs "hnsw:pca=128;ivf"  # slow builds
    .venv/bin/python -m benchmarks.bench_index --ids 5000 --configs "ivfpq;hnsw;ivf"  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from typing import Any

import faiss
import numpy as np

from reid_stra.retrieval.index import SearchIndex, build_index, exact_index
from reid_stra.utils.precision import cpu_model_name

# The recommended approximate index; add "hnsw:pca=128;ivf" for the comparison rows of BENCHMARKS.md
# (their builds take 6-12 minutes each at 1,000,000 x 512 on a busy 2-core CPU).
DEFAULT_CONFIGS = "ivfpq;ivfpq:nprobe=128"


def main() -> None:
    args = _parse_args()
    started = time.perf_counter()
    gallery, queries, seconds = generate(args.ids, args.views, args.dim, args.queries, args.noise, args.seed)
    print(
        f"generated {gallery.shape[0]:,} x {gallery.shape[1]} gallery + {len(queries)} queries "
        f"in {seconds:.1f} s"
    )
    results: dict[str, Any] = {
        "machine": _machine(),
        "gallery": list(gallery.shape),
        "ids": args.ids,
        "views": args.views,
        "noise": args.noise,
        "queries": args.queries,
        "k": args.k,
    }
    exact = exact_index(gallery)
    truth, flat_seconds = _timed_search(exact, queries, args.k)
    flat_single = _single_query_ms(exact, queries[: args.single], args.k)
    results["flat"] = {
        "batch_seconds": round(flat_seconds, 3),
        "queries_per_second": round(len(queries) / flat_seconds, 1),
        "ms_per_query_batched": round(1000 * flat_seconds / len(queries), 3),
        "ms_per_query_single": round(flat_single, 2),
        "index_bytes": gallery.nbytes,
    }
    print(f"flat: {results['flat']}")
    rows = []
    for spec in [s for s in args.configs.split(";") if s.strip()]:
        kind, options = _parse_spec(spec)
        built = build_index(gallery, kind, progress=False, **options)
        found, seconds = _timed_search(built, queries, args.k)
        single = _single_query_ms(built, queries[: args.single], args.k)
        row = {
            "config": spec,
            "params": built.params,
            "build_seconds": built.params["build_seconds"],
            "index_bytes": _index_bytes(built),
            "needs_features_for_rerank": built.reranked,
            "queries_per_second": round(len(queries) / seconds, 1),
            "ms_per_query_batched": round(1000 * seconds / len(queries), 3),
            "ms_per_query_single": round(single, 2),
            "speedup_vs_flat": round(flat_seconds / seconds, 1),
            "speedup_single_vs_flat": round(flat_single / single, 1),
            f"recall@{args.k}": round(recall(truth, found), 4),
        }
        rows.append(row)
        print(json.dumps(row))
        del built
    results["indexes"] = rows
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
    print(json.dumps(results, indent=2))
    _print_markdown(results, args.k)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


def generate(
    ids: int, views: int, dim: int, num_queries: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Identity centres on the unit sphere, ``views`` noisy normalized views of each, and queries."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery = np.empty((ids * views, dim), dtype=np.float32)
    step = 5_000
    for start in range(0, ids, step):
        block = centres[start : start + step]
        rows = slice(start * views, (start + len(block)) * views)
        gallery[rows] = _views(np.repeat(block, views, axis=0), noise, rng)
    queries = _views(centres[rng.integers(0, ids, num_queries)], noise, rng)
    return gallery, queries, time.perf_counter() - started


def _views(centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    dim = centres.shape[1]
    noisy = centres + rng.standard_normal(centres.shape, dtype=np.float32) * np.float32(noise / np.sqrt(dim))
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def recall(truth: np.ndarray, found: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k that the index also returned."""
    k = truth.shape[1]
    return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found, strict=True)]))


def _timed_search(index: SearchIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    index.search(queries[:10], k)  # warm-up (thread pool, page cache)
    started = time.perf_counter()
    _, found = index.search(queries, k)
    return found, time.perf_counter() - started


def _single_query_ms(index: SearchIndex, queries: np.ndarray, k: int) -> float:
    started = time.perf_counter()
    for query in queries:
        index.search(query[None, :], k)
    return 1000 * (time.perf_counter() - started) / max(1, len(queries))


def _index_bytes(index: SearchIndex) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "index.faiss")
        faiss.write_index(index.index, path)
        return os.path.getsize(path)


def _parse_spec(spec: str) -> tuple[str, dict[str, int]]:
    kind, _, options = spec.strip().partition(":")
    parsed = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        parsed[key.strip()] = int(value)
    return kind.strip(), parsed


def _machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model_name(),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "faiss": faiss.__version__,
    }


def _print_markdown(results: dict[str, Any], k: int) -> None:
    flat = results["flat"]
    print(f"\n| index | build | index size | queries/s (batch) | ms/query single | speed-up | recall@{k} |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| flat (exact) | - | {flat['index_bytes'] / 1e9:.2f} GB (the features) | "
        f"{flat['queries_per_second']:,.0f} | {flat['ms_per_query_single']:.1f} | 1× | 1.000 |"
    )
    for row in results["indexes"]:
        extra = " + features for re-ranking" if row["needs_features_for_rerank"] else ""
        print(
            f"| {row['config']} | {row['build_seconds']:.0f} s | {row['index_bytes'] / 1e9:.3f} GB{extra} | "
            f"{row['queries_per_second']:,.0f} | {row['ms_per_query_single']:.2f} | "
            f"{row['speedup_vs_flat']:.0f}× | {row[f'recall@{k}']:.3f} |"
        )


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ids", type=int, default=50_000, help="identity centres")
    parser.add_argument("--views", type=int, default=20, help="noisy views per identity")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension")
    parser.add_argument("--noise", type=float, default=0.75, help="view noise (0.75: cosine 0.8 to centre)")
    parser.add_argument("--queries", type=int, default=1000, help="queries, searched as one batch")
    parser.add_argument("--single", type=int, default=50, help="queries also timed one at a time")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="';'-separated kind[:key=value,...]")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser.parse_args()


if __name__ == "__main__":
    main()
