"""Pseudo-identities for unlabeled target images: density clustering on k-reciprocal Jaccard distances.

Cluster Contrast ReID (Dai et al., 2021) and SpCL (Ge et al., 2020) label target images by running
DBSCAN on the Jaccard distances of k-reciprocal re-ranking; images in no dense region are outliers
and sit the round out. The distances come from our sparse re-ranking
(:func:`reid_stra.metrics.rerank.jaccard_distance_graph`, no N x N matrix) and the clustering
from scikit-learn's DBSCAN on that sparse graph, so memory grows with the close pairs only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.cluster import DBSCAN

from reid_stra.metrics.rerank import jaccard_density_radius, jaccard_distance_graph

OUTLIER = -1
# UDAP's rho: the clustering radius is the mean distance of the closest 1.6 per mille of all pairs.
DENSITY_TOP_FRACTION = 1.6e-3


@dataclass(frozen=True)
class ClusterStats:
    """What one clustering found (logged per round, kept in the run's card)."""

    images: int
    clusters: int
    outliers: int
    largest: int
    median_size: float

    @property
    def outlier_fraction(self) -> float:
        return self.outliers / self.images if self.images else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.clusters} clusters (median {self.median_size:g} images, largest {self.largest}), "
            f"{self.outliers} outliers ({100 * self.outlier_fraction:.1f}%) of {self.images} images"
        )


def cluster_features(
    features: np.ndarray | torch.Tensor,
    *,
    eps: float = 0.6,
    min_samples: int = 4,
    k1: int = 30,
    k2: int = 6,
) -> np.ndarray:
    """Cluster ids ``0..C-1`` per row of L2-normalized ``features``, ``-1`` for outliers.

    Ids are numbered in order of each cluster's first image, so the labels depend only on the
    features, not on how DBSCAN happened to visit them.
    """
    features = torch.as_tensor(np.asarray(features, dtype=np.float32))
    graph = jaccard_distance_graph(features, k1=k1, k2=k2, max_distance=eps + 1e-6, metric="cosine")
    raw = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(graph)
    return renumber(raw)


def density_radius(
    features: np.ndarray | torch.Tensor,
    *,
    top_fraction: float = DENSITY_TOP_FRACTION,
    k1: int = 30,
    k2: int = 6,
) -> float:
    """DBSCAN's ``eps`` read from the features' own Jaccard distances (UDAP's rule).

    A fixed radius (Cluster Contrast's 0.6) suits features that already separate people; on
    cameras the model never saw, distances shrink together and a fixed radius chains most crops
    into one cluster, which then teaches the model that everyone is alike. The closest
    ``top_fraction`` of pairs says what "close" means for these features.
    """
    features = torch.as_tensor(np.asarray(features, dtype=np.float32))
    return jaccard_density_radius(features, top_fraction=top_fraction, k1=k1, k2=k2, metric="cosine")


def centre_per_camera(features: np.ndarray, cameras: np.ndarray) -> np.ndarray:
    """Each camera's mean feature removed, rows re-normalized.

    Light, background and viewpoint shift every crop of one camera the same way, so raw features
    cluster by camera as much as by person; removing the per-camera mean (camera-based
    normalization, Zhuang et al., ECCV 2020) lets clusters span cameras.
    """
    centred = np.array(features, dtype=np.float32)
    cameras = np.asarray(cameras)
    for camera in np.unique(cameras):
        rows = cameras == camera
        centred[rows] -= centred[rows].mean(axis=0)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def renumber(raw: np.ndarray) -> np.ndarray:
    """Cluster ids in order of first appearance; outliers stay ``-1``."""
    labels = np.full(len(raw), OUTLIER, dtype=np.int64)
    clustered = raw >= 0
    if clustered.any():
        _, first, inverse = np.unique(raw[clustered], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(first))  # rank of each cluster's first appearance
        labels[clustered] = order[inverse]
    return labels


def cluster_stats(labels: np.ndarray) -> ClusterStats:
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
    return ClusterStats(
        images=int(len(labels)),
        clusters=int(len(sizes)),
        outliers=int((labels < 0).sum()),
        largest=int(sizes.max()) if len(sizes) else 0,
        median_size=float(np.median(sizes)) if len(sizes) else 0.0,
    )
