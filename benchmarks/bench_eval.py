"""Evaluation speed and memory: ``python -m benchmarks.bench_eval`` (writes nothing; prints a report).

1. Market-1501-sized distance matrix (3,368 x 19,732; 750 ids, 6 cameras, distractors and junk):
   :func:`reid_stra.evaluate_rank` against the straightforward per-query argsort evaluator
   (:func:`reid_stra.metrics.reference.reference_evaluate_rank`, a port of torchreid's pure-Python
   ``eval_market1501`` with its default quicksort), timed in the same run. The reference is timed
   on a subset of queries and extrapolated (its cost is the same for every query). Also shown:
   the bare per-row ``np.argsort`` cost, the floor of any argsort-based (even compiled) evaluator.
   Distances come from clustered features ("realistic": a mid-quality model) and, as the worst
   case for us, from uniform noise (positives land anywhere in the list).
2. MSMT17-sized problem from features (11,659 x 82,161, 512-d), in a fresh subprocess: wall time
   and peak RSS (``ru_maxrss``) of :func:`reid_stra.metrics.evaluation.evaluate_features`.
3. k-reciprocal re-ranking + query expansion on Market-1501-sized 128-d features (subprocess): time, RSS.

The machine is shared: compare the ratios (measured back to back), not absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

MARKET = {
    "num_ids": 750,
    "num_cams": 6,
    "num_query": 3368,
    "num_gallery": 19732,
    "distractors": 2793,
    "junk": 3819,
}
MSMT = {
    "num_ids": 3060,
    "num_cams": 15,
    "num_query": 11659,
    "num_gallery": 82161,
    "distractors": 0,
    "junk": 0,
}


def make_problem(spec: dict, dim: int, noise: float, seed: int = 0) -> tuple:
    """Clustered float32 features with Market-style ids/cameras; every query has a positive."""
    rng = np.random.default_rng(seed)
    ids, cams = spec["num_ids"], spec["num_cams"]
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    cam_bias = 0.5 * rng.standard_normal((cams, dim), dtype=np.float32)
    id_cams = [
        rng.choice(cams, size=int(rng.integers(2, min(cams, 6) + 1)), replace=False) for _ in range(ids)
    ]
    pairs = np.array([(i, c) for i in range(ids) for c in id_cams[i]])
    q_sel = pairs[rng.choice(len(pairs), spec["num_query"], replace=len(pairs) < spec["num_query"])]
    num_real = spec["num_gallery"] - spec["distractors"] - spec["junk"]
    g_ids = np.concatenate([q_sel[:, 0], rng.integers(0, ids, num_real - len(q_sel))])[:num_real]
    # the first gallery image of each query's person comes from another of its cameras: all valid
    g_cams = np.array([rng.choice(id_cams[i]) for i in g_ids])
    for k, (pid, cam) in enumerate(q_sel[: min(len(q_sel), num_real)]):
        others = [c for c in id_cams[pid] if c != cam]
        g_cams[k] = others[0]

    def features(pids: np.ndarray, cams_: np.ndarray) -> np.ndarray:
        out = centres[pids] + cam_bias[cams_]
        out += noise * rng.standard_normal(out.shape, dtype=np.float32)
        return out

    qf = features(q_sel[:, 0], q_sel[:, 1])
    others = spec["distractors"] + spec["junk"]
    gf = np.concatenate([features(g_ids, g_cams), 1.2 * rng.standard_normal((others, dim), dtype=np.float32)])
    g_pids = np.concatenate([g_ids + 1, np.zeros(spec["distractors"], int), -np.ones(spec["junk"], int)])
    g_camids = np.concatenate([g_cams, rng.integers(0, cams, others)]) + 1
    perm = rng.permutation(len(gf))
    return qf, gf[perm], q_sel[:, 0] + 1, g_pids[perm], q_sel[:, 1] + 1, g_camids[perm]


def squared_euclidean(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    import torch

    from reid_stra.metrics.distance import distance_block

    with torch.inference_mode():
        return distance_block(torch.from_numpy(qf), torch.from_numpy(gf), "euclidean").numpy()


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_rank(subset: int, repeats: int) -> list[dict]:
    from reid_stra.metrics.rank import evaluate_rank
    from reid_stra.metrics.reference import reference_evaluate_rank

    qf, gf, q_pids, g_pids, q_cams, g_cams = make_problem(MARKET, dim=64, noise=0.8)
    realistic = squared_euclidean(qf, gf)
    uniform = np.random.default_rng(1).random(realistic.shape, dtype=np.float32)
    rows = []
    sub = slice(0, subset)
    for name, dist in (
        ("realistic (clustered features)", realistic),
        ("uniform noise (worst case)", uniform),
    ):
        ours, result = best_of(repeats, lambda d=dist: evaluate_rank(d, q_pids, g_pids, q_cams, g_cams))
        ref_time, ref = best_of(
            1,
            lambda d=dist: reference_evaluate_rank(
                d[sub], q_pids[sub], g_pids, q_cams[sub], g_cams, stable=False
            ),
        )
        ref_full = ref_time * len(dist) / subset
        argsort_time, _ = best_of(1, lambda d=dist: [np.argsort(row) for row in d[sub]])
        argsort_full = argsort_time * len(dist) / subset
        check = evaluate_rank(dist[sub], q_pids[sub], g_pids, q_cams[sub], g_cams)
        rows.append(
            {
                "distances": name,
                "ours_s": ours,
                "reference_s": ref_full,
                "speedup": ref_full / ours,
                "argsort_only_s": argsort_full,
                "speedup_vs_argsort_only": argsort_full / ours,
                "max_abs_diff_mAP_vs_reference": abs(check["mAP"] - ref["mAP"]),
                "rank1": result["rank1"],
                "mAP": result["mAP"],
            }
        )
    return rows


def child_msmt() -> dict:
    """Runs in a fresh process so that ru_maxrss is this evaluation's peak alone."""
    import torch

    from reid_stra.metrics.evaluation import evaluate_features

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_problem(MSMT, dim=512, noise=1.2)
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, progress=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_inputs_mb": rss_inputs,
        "dense_qxg_float32_mb": len(qf) * len(gf) * 4 / 2**20,
        "mAP": result["mAP"],
        "num_valid": result["num_valid"],
    }


def child_rerank() -> dict:
    import torch

    from reid_stra.metrics.evaluation import evaluate_features

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_problem(MARKET, dim=128, noise=1.0)
    out = {}
    for name, options in (("plain", {}), ("rerank", {"rerank": True}), ("qe", {"qe": True})):
        start = time.perf_counter()
        result = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, progress=False, **options)
        out[name] = {"seconds": time.perf_counter() - start, "mAP": result["mAP"], "rank1": result["rank1"]}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = len(qf) + len(gf)
    out["dense_nxn_float32_mb"] = total * total * 4 / 2**20
    return out


def run_child(name: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_eval", "--child", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=400, help="queries the slow reference is timed on")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for our evaluator (best of)")
    parser.add_argument("--skip-msmt", action="store_true", help="skip the MSMT17-sized memory benchmark")
    parser.add_argument("--skip-rerank", action="store_true", help="skip the re-ranking benchmark")
    parser.add_argument("--child", choices=["msmt", "rerank"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_msmt() if args.child == "msmt" else child_rerank()))
        return
    print("## evaluate_rank on a Market-1501-sized matrix (3,368 x 19,732)")
    for row in bench_rank(args.subset, args.repeats):
        print(json.dumps(row))
    if not args.skip_msmt:
        print("## MSMT17-sized evaluation from 512-d features (11,659 x 82,161), fresh process")
        print(json.dumps(run_child("msmt")))
    if not args.skip_rerank:
        print("## re-ranking / query expansion on Market-1501-sized 128-d features, fresh process")
        print(json.dumps(run_child("rerank")))


if __name__ == "__main__":
    main()
