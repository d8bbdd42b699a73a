"""Exact nearest and farthest neighbours of every feature among all features (FAISS).

Re-ranking and query expansion need, for each of the N = queries + gallery items, its k nearest
items and, for re-ranking's row normalization, its largest distance. Both come from FAISS's
brute-force search (:func:`knn`) without an N x N matrix: memory is N x k.
Distances follow :mod:`reid_stra.metrics.distance` (squared Euclidean, or cosine distance on
unit vectors).
"""

from __future__ import annotations

import os

import faiss
import numpy as np
import torch


def configure_faiss_threads() -> None:
    """FAISS on the cores this process may run on (its default may count the whole machine's).

    Called once per command by the CLI, never by the library's own functions, so a program's
    own ``faiss.omp_set_num_threads`` stays in force."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    faiss.omp_set_num_threads(max(1, available))


def knn(
    queries: np.ndarray, gallery: np.ndarray, k: int, metric: str = "ip"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` ``(distances, indices)`` of each query row in ``gallery`` (FAISS brute force).

    Distances are ``1 - ip`` (``metric="ip"``) or squared Euclidean (``"l2"``), as the search
    index reports them; ``k`` is clamped to the gallery size.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    k = max(1, min(int(k), gallery.shape[0]))
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    scores, indices = faiss.knn(queries, gallery, k, faiss_metric)
    distances = ((1.0 - scores) if metric == "ip" else scores.copy()).astype(np.float32, copy=False)
    distances[indices < 0] = np.inf
    return distances, indices.astype(np.int64, copy=False)


def _as_faiss_array(features: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32)


def nearest_neighbors(features: torch.Tensor, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` of each row's ``k`` nearest rows (itself included), nearest first."""
    data = _as_faiss_array(features)
    distances, indices = knn(data, data, k, "ip" if metric == "cosine" else "l2")
    return indices, distances


def farthest_distances(features: torch.Tensor, metric: str) -> np.ndarray:
    """Each row's largest distance to any row (k-reciprocal re-ranking normalizes rows by it).

    A farthest-neighbour query is a maximum-inner-product query: ``max_j 1 - x.y_j`` uses the
    query ``-x``; ``max_j |x|^2 + |y_j|^2 - 2 x.y_j`` uses ``[-2x, 1]`` against ``[y_j, |y_j|^2]``.
    """
    data = _as_faiss_array(features)
    if metric == "cosine":
        distances, _ = knn(-data, data, 1, "ip")  # 1 - max_j(-x.y_j) = 1 + min_j x.y_j
        return 2.0 - distances[:, 0].astype(np.float64)  # max_j (1 - x.y_j)
    sq_norms = (data.astype(np.float64) ** 2).sum(axis=1)
    augmented = np.hstack([data, sq_norms[:, None].astype(np.float32)])
    probes = np.hstack([-2.0 * data, np.ones((len(data), 1), dtype=np.float32)])
    distances, _ = knn(probes, augmented, 1, "ip")  # 1 - max inner product
    return np.maximum(sq_norms + (1.0 - distances[:, 0].astype(np.float64)), 0.0)
