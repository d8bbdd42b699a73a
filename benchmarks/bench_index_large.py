"""IVF-PQ over a 5M x 256 memory-mapped gallery: `reid-stra index build`'s peak memory, build time, recall.

1. A re-ID-shaped gallery (``--ids`` identity centres x ``--views`` noisy views, as in
   ``bench_index``) is written as a reid-stra feature file in ``--tmp``, block by block
   (``save_features_streamed``), so this process never holds it either.
2. ``reid-stra index build FILE --kind ivfpq --json`` runs in a fresh process, as a user runs it:
   its peak RSS (``ru_maxrss``: imports, the sidecar's image paths, the training sample, the index
   itself) and its build time.
3. The exact top-``k`` of ``--queries`` queries, streamed over the file block by block, is the truth.
4. The saved index is searched as ``reid-stra search`` does (``load_or_build_index``, IVF-PQ
   candidates re-ranked with the memory-mapped exact features): recall@k, and the time per query in
   one batch and one at a time.

    .venv/bin/python -m benchmarks.bench_index_large [--ids 250000 --views 20 --dim 256] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from reid_stra.retrieval.features import FeatureMeta, save_features_streamed
from reid_stra.retrieval.index_store import load_or_build_index
from reid_stra.retrieval.mapped import row_blocks
from reid_stra.utils.precision import cpu_model_name

CLI = str(Path(sys.executable).with_name("reid-stra"))
IDS_PER_BLOCK = 5_000


def views(centres: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy unit-length views of ``centres`` (noise 0.75: cosine about 0.8 to the centre)."""
    noisy = centres + rng.standard_normal(centres.shape, dtype=np.float32) * np.float32(
        noise / np.sqrt(centres.shape[1])
    )
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def write_gallery(path: Path, centres: np.ndarray, per_id: int, noise: float, seed: int) -> None:
    rows, dim = len(centres) * per_id, centres.shape[1]

    def blocks() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for start in range(0, len(centres), IDS_PER_BLOCK):
            yield views(np.repeat(centres[start : start + IDS_PER_BLOCK], per_id, axis=0), noise, rng)

    meta = FeatureMeta(paths=[f"c/{i:08d}.jpg" for i in range(rows)], normalized=True)
    save_features_streamed(path, blocks, rows, dim, meta)


def exact_top_k(path: Path, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force inner-product top-k over the file, one block at a time."""
    gallery = np.load(path, mmap_mode="r")
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for start, block in row_blocks(gallery, 262_144):
        scores, ids = faiss.knn(queries, block, k, faiss.METRIC_INNER_PRODUCT)
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_ids = np.concatenate([best_ids, ids + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    return best_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=250_000)
    parser.add_argument("--views", type=int, default=20)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--noise", type=float, default=0.75)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=50, help="queries also timed one at a time")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tmp", type=Path, default=None, help="where the gallery file goes (rows x dim x 4 B)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.ids, args.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = views(centres[rng.integers(0, args.ids, args.queries)], args.noise, rng)
    result: dict = {
        "cpu": cpu_model_name(),
        "cores": len(os.sched_getaffinity(0)),
        "faiss": faiss.__version__,
    }
    with tempfile.TemporaryDirectory(dir=args.tmp) as scratch:
        path = Path(scratch) / "gallery.npy"
        started = time.perf_counter()
        write_gallery(path, centres, args.views, args.noise, args.seed + 1)
        del centres
        result["gallery"] = [args.ids * args.views, args.dim]
        result["gallery_mb"] = round(path.stat().st_size / 2**20)
        result["write_seconds"] = round(time.perf_counter() - started, 1)
        print(f"wrote {path} ({result['gallery_mb']:,} MB) in {result['write_seconds']} s", flush=True)

        build = subprocess.run(
            [CLI, "index", "build", str(path), "--kind", "ivfpq", "--json"],
            check=True, capture_output=True, text=True, env={**os.environ, "REID_STRA_NO_PROGRESS": "1"},
        )  # fmt: skip
        built = json.loads(build.stdout)
        result["build_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        result["build_seconds"] = built["params"]["build_seconds"]
        result["index_mb"] = round(built["bytes"] / 2**20, 1)
        result["params"] = built["params"]
        print(
            f"index build: {json.dumps(built['params'])}, peak RSS {result['build_peak_rss_mb']} MB",
            flush=True,
        )

        started = time.perf_counter()
        truth = exact_top_k(path, queries, args.k)
        result["exact_seconds_batch"] = round(time.perf_counter() - started, 1)

        index = load_or_build_index(path, "auto", progress=False)
        index.search(queries[:10], args.k)  # warm-up: page cache, thread pool
        started = time.perf_counter()
        _, found = index.search(queries, args.k)
        batch = time.perf_counter() - started
        started = time.perf_counter()
        for query in queries[: args.single]:
            index.search(query[None, :], args.k)
        single = (time.perf_counter() - started) / args.single
        recall = float(np.mean([len(set(t) & set(f)) / args.k for t, f in zip(truth, found, strict=True)]))
        result.update(
            recall_at_k=round(recall, 4),
            k=args.k,
            ms_per_query_batched=round(1000 * batch / len(queries), 3),
            ms_per_query_single=round(1000 * single, 2),
            exact_ms_per_query_batched=round(1000 * result["exact_seconds_batch"] / len(queries), 2),
        )
    print(json.dumps(result, indent=2))
    print(
        f"\n| gallery | `index build --kind ivfpq` peak RSS | index | build | recall@{args.k} "
        "| ms/query (batch of 1,000) | ms/query (one at a time) | exact, ms/query (batch) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {result['gallery'][0]:,} x {args.dim} ({result['gallery_mb']:,} MB) | "
        f"{result['build_peak_rss_mb']:,} MB | {result['index_mb']} MB | {result['build_seconds']:.0f} s | "
        f"{recall:.3f} | {result['ms_per_query_batched']} | {result['ms_per_query_single']} | "
        f"{result['exact_ms_per_query_batched']} |"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
