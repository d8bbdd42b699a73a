"""Query x gallery distances, computed in query chunks so nothing query x gallery is ever held.

The definitions are torchreid's, so numbers agree with published ones on the same features:
``euclidean`` is the *squared* Euclidean distance ``||q||^2 + ||g||^2 - 2 q.g`` (same ranking as
the Euclidean distance, one square root cheaper) and ``cosine`` is ``1 - q.g / (|q| |g|)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from reid_stra.errors import ReidError, unknown_name_error

METRICS = ("euclidean", "cosine")
_CHUNK_ELEMENTS = 1 << 23  # query rows per chunk x gallery size: ~32 MB of float32 distances


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise unknown_name_error("distance metric", str(metric), METRICS)
    return metric


def as_features(features: Any, name: str) -> torch.Tensor:
    """A float32 (N, D) CPU tensor view of ``features`` (numpy, memory-mapped or torch)."""
    if isinstance(features, torch.Tensor):
        tensor = features.detach().to("cpu", torch.float32)
    else:
        array = np.asarray(features)
        if array.dtype.kind not in "fiu":
            raise ReidError(f"{name}: expected numeric features, got dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        shape = tuple(tensor.shape)
        raise ReidError(f"{name}: expected a non-empty 2-D (N x D) feature array, got shape {shape}")
    if not bool(torch.isfinite(tensor).all()):
        row = int(torch.nonzero(~torch.isfinite(tensor).all(dim=1))[0, 0])
        raise ReidError(f"{name}: row {row} holds NaN or inf; re-extract those features")
    return tensor


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features, p=2, dim=1)


def prepare_pair(qf: Any, gf: Any, metric: str, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate both sets and bring them into the form :func:`distance_block` expects."""
    check_metric(metric)
    query = as_features(qf, "query features")
    gallery = as_features(gf, "gallery features")
    if query.shape[1] != gallery.shape[1]:
        raise ReidError(
            f"query features are {query.shape[1]}-d but gallery features are {gallery.shape[1]}-d; "
            "both must come from the same model"
        )
    if normalize or metric == "cosine":  # cosine distance is defined on unit vectors
        query, gallery = l2_normalize(query), l2_normalize(gallery)
    return query, gallery


def distance_block(
    query: torch.Tensor, gallery: torch.Tensor, metric: str, gallery_sq_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Distances of a query block to the gallery (features already prepared, same device)."""
    if metric == "cosine":
        return 1.0 - query @ gallery.T
    if gallery_sq_norms is None:
        gallery_sq_norms = gallery.pow(2).sum(dim=1)
    block = query.pow(2).sum(dim=1, keepdim=True) + gallery_sq_norms.unsqueeze(0)
    return block.addmm_(query, gallery.T, beta=1, alpha=-2)


def iter_distance_chunks(
    query: torch.Tensor,
    gallery: torch.Tensor,
    metric: str,
    *,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, distances)`` float32 numpy blocks of consecutive query rows."""
    device = torch.device(device)
    rows = chunk_size or max(1, _CHUNK_ELEMENTS // gallery.shape[0])
    gallery_dev = gallery.to(device)
    sq_norms = gallery_dev.pow(2).sum(dim=1) if metric == "euclidean" else None
    with torch.inference_mode():
        for start in range(0, query.shape[0], rows):
            block = distance_block(query[start : start + rows].to(device), gallery_dev, metric, sq_norms)
            yield start, block.cpu().numpy()


def pair_distances(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances between rows ``x[i]`` and ``y[i]`` (same formula as :func:`distance_block`)."""
    if metric == "cosine":
        return 1.0 - (x * y).sum(dim=1)
    return x.pow(2).sum(dim=1) + y.pow(2).sum(dim=1) - 2 * (x * y).sum(dim=1)
