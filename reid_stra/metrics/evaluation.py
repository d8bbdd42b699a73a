"""Evaluate features on a query/gallery split: the metric pipeline behind `reid-stra evaluate`.

Evaluating a *model* (extract, then this) is :mod:`reid_stra.retrieval.evaluation`, above both.

features -> (normalize) -> (query expansion) -> distances in query chunks (or k-reciprocal
re-ranked distances) -> :class:`~reid_stra.metrics.rank.RankAccumulator`. No query x gallery
matrix is ever held, so MSMT17-sized problems fit in a couple of GB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reid_stra.errors import ReidError
from reid_stra.metrics.distance import check_metric, iter_distance_chunks, l2_normalize, prepare_pair
from reid_stra.metrics.query_expansion import check_qe_params, query_expansion
from reid_stra.metrics.rank import RankAccumulator
from reid_stra.metrics.rerank import check_rerank_params, k_reciprocal_distance_chunks
from reid_stra.utils.device import resolve_device
from reid_stra.utils.progress import task_progress

# The protocol settings of an evaluation, by evaluate_features' parameter names: what a command
# passes through, checks up front and reports (one list for all of them).
SETTINGS = ("metric", "normalize", "rerank", "k1", "k2", "lambda_value", "qe", "qe_k", "qe_alpha")


def check_settings(
    metric: str, rerank: bool, k1: int, k2: int, lambda_value: float, qe: bool, qe_k: int, qe_alpha: float
) -> None:
    """Fail on bad settings before any work; the re-ranking and QE values only count when enabled."""
    check_metric(metric)
    if rerank:
        check_rerank_params(k1, k2, lambda_value)
    if qe:
        check_qe_params(qe_k, qe_alpha)


def evaluate_features(
    qf: Any,
    gf: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    *,
    metric: str = "euclidean",
    normalize: bool = True,
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    qe: bool = False,
    qe_k: int = 10,
    qe_alpha: float = 3.0,
    max_rank: int = 50,
    mode: str = "standard",
    device: str | torch.device = "cpu",
    chunk_size: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate query features against gallery features; returns :func:`evaluate_rank`'s dict.

    ``metric`` is ``euclidean`` (squared, as torchreid) or ``cosine``; ``normalize`` L2-normalizes
    features first. ``rerank`` applies k-reciprocal re-ranking (k1, k2, lambda), ``qe``
    alpha-query expansion (qe_k, qe_alpha), both from FAISS neighbour lists. ``chunk_size`` is
    the number of query rows whose distances exist at once (default: about 32 MB of them).
    """
    check_settings(metric, rerank, k1, k2, lambda_value, qe, qe_k, qe_alpha)
    if chunk_size is not None and chunk_size < 1:
        raise ReidError(f"chunk_size {chunk_size}: must be at least 1")
    device = resolve_device(device) if isinstance(device, str) else device
    query, gallery = prepare_pair(qf, gf, metric, normalize)
    q_pids = _ids(q_pids, "query person ids", len(query))
    q_camids = _ids(q_camids, "query camera ids", len(query))
    accumulator = RankAccumulator(
        _ids(g_pids, "gallery person ids", len(gallery)),
        _ids(g_camids, "gallery camera ids", len(gallery)),
        max_rank=max_rank,
        mode=mode,
    )
    if qe:
        query, gallery = query_expansion(query, gallery, k=qe_k, alpha=qe_alpha)
        if normalize or metric == "cosine":
            query, gallery = l2_normalize(query), l2_normalize(gallery)
    if rerank:
        params = {"k1": k1, "k2": k2, "lambda_value": lambda_value}
        chunks = k_reciprocal_distance_chunks(
            query, gallery, metric, **params, device=device, chunk_size=chunk_size
        )
    else:
        chunks = iter_distance_chunks(query, gallery, metric, device=device, chunk_size=chunk_size)
    bar = task_progress("evaluating", total=len(query), unit="q", show=progress)
    with bar as advance:
        for start, block in chunks:
            stop = start + len(block)
            accumulator.add(block, q_pids[start:stop], q_camids[start:stop])
            advance(len(block))
    result = accumulator.result()
    result.update(metric=metric, normalize=normalize, rerank=rerank, qe=qe)
    if rerank:
        result.update(k1=k1, k2=k2, lambda_value=lambda_value)
    if qe:
        result.update(qe_k=qe_k, qe_alpha=qe_alpha)
    return result


def _ids(values: Any, name: str, expected: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != expected:
        raise ReidError(
            f"{name}: got {array.shape[0] if array.ndim else 0} ids for {expected} feature rows; "
            "pass one id per feature row, in the same order"
        )
    return array
