"""Exact nearest and farthest neighbours of every feature among all features (FAISS).

Re-ranking and query expansion need, for each of the N = queries + gallery items, its k nearest
items and, for re-ranking's row normalization, its largest distance. Both come from the
retrieval module's FAISS brute-force search (:func:`reid_stra.retrieval.index.knn`) without an
N x N matrix: memory is N x k. Distances follow :mod:`reid_stra.metrics.distance` (squared
Euclidean, or cosine distance on unit vectors).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_faiss_array(features: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(features.detach().cpu().numpy(), dtype=np.float32)


def nearest_neighbors(features: torch.Tensor, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` of each row's ``k`` nearest rows (itself included), nearest first."""
    from reid_stra.retrieval.index import knn

    data = _as_faiss_array(features)
    distances, indices = knn(data, data, k, "ip" if metric == "cosine" else "l2")
    return indices, distances


def farthest_distances(features: torch.Tensor, metric: str) -> np.ndarray:
    """Each row's largest distance to any row (k-reciprocal re-ranking normalizes rows by it).

    A farthest-neighbour query is a maximum-inner-product query: ``max_j 1 - x.y_j`` uses the
    query ``-x``; ``max_j |x|^2 + |y_j|^2 - 2 x.y_j`` uses ``[-2x, 1]`` against ``[y_j, |y_j|^2]``.
    """
    from reid_stra.retrieval.index import knn

    data = _as_faiss_array(features)
    if metric == "cosine":
        distances, _ = knn(-data, data, 1, "ip")  # 1 - max_j(-x.y_j) = 1 + min_j x.y_j
        return 2.0 - distances[:, 0].astype(np.float64)  # max_j (1 - x.y_j)
    sq_norms = (data.astype(np.float64) ** 2).sum(axis=1)
    augmented = np.hstack([data, sq_norms[:, None].astype(np.float32)])
    probes = np.hstack([-2.0 * data, np.ones((len(data), 1), dtype=np.float32)])
    distances, _ = knn(probes, augmented, 1, "ip")  # 1 - max inner product
    return np.maximum(sq_norms + (1.0 - distances[:, 0].astype(np.float64)), 0.0)
