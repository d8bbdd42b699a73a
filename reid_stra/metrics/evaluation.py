"""Evaluate features on a query/gallery split: the metric pipeline behind `reid-stra evaluate`.

Evaluating a *model* (extract, then this) is :mod:`reid_stra.retrieval.evaluation`, above both.

features -> (normalize) -> (query expansion) -> distances in query chunks (or k-reciprocal
re-ranked distances) -> :class:`~reid_stra.metrics.rank.RankAccumulator`. No query x gallery
matrix is ever held, so MSMT17-sized problems fit in a couple of GB.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.metrics.distance import check_metric, iter_distance_chunks, l2_normalize, prepare_pair
from reid_stra.metrics.query_expansion import check_qe_params, query_expansion
from reid_stra.metrics.rank import MODES, RankAccumulator
from reid_stra.metrics.rerank import RerankSettings, check_rerank_params, k_reciprocal_distance_chunks
from reid_stra.utils.device import resolve_device
from reid_stra.utils.progress import task_progress

# The protocol settings of an evaluation, by their names in EvalSettings: what a command passes
# through, checks up front and reports (one list for all of them).
SETTINGS = ("metric", "normalize", "rerank", "k1", "k2", "lambda_value", "qe", "qe_k", "qe_alpha")


@dataclass(frozen=True)
class EvalSettings:
    """How query and gallery features are compared and scored: the protocol's defaults, once.

    ``metric`` is ``euclidean`` (squared, as torchreid) or ``cosine``; ``normalize`` L2-normalizes
    features first. ``rerank`` applies k-reciprocal re-ranking (k1, k2, lambda_value), ``qe``
    alpha-query expansion (qe_k, qe_alpha), both from FAISS neighbour lists. Checked when made.
    """

    metric: str = "euclidean"
    normalize: bool = True
    rerank: bool = False
    k1: int = RerankSettings.k1
    k2: int = RerankSettings.k2
    lambda_value: float = RerankSettings.lambda_value
    qe: bool = False
    qe_k: int = 10
    qe_alpha: float = 3.0
    max_rank: int = 50
    mode: str = "standard"

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if self.rerank:
            check_rerank_params(self.k1, self.k2, self.lambda_value)
        if self.qe:
            check_qe_params(self.qe_k, self.qe_alpha)
        if self.mode not in MODES:
            raise unknown_name_error("--mode", self.mode, MODES)
        if self.max_rank < 1:
            raise ReidError(f"--max-rank {self.max_rank}: must be at least 1 (e.g. 50)")

    def with_values(self, **values: Any) -> EvalSettings:
        """These settings with some replaced (checked again)."""
        return dataclasses.replace(self, **values) if values else self


def evaluate_features(
    qf: Any,
    gf: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    settings: EvalSettings | None = None,
    *,
    device: str | torch.device = "cpu",
    chunk_size: int | None = None,
    progress: bool = True,
    **values: Any,
) -> dict[str, Any]:
    """Evaluate query features against gallery features; returns :func:`evaluate_rank`'s dict.

    ``settings`` (:class:`EvalSettings`; keyword ``values`` replace some of them, e.g.
    ``rerank=True``) say how. ``chunk_size`` is the number of query rows whose distances exist at
    once (default: about 32 MB of them).
    """
    settings = (settings or EvalSettings()).with_values(**values)
    if chunk_size is not None and chunk_size < 1:
        raise ReidError(f"chunk_size {chunk_size}: must be at least 1")
    device = resolve_device(device) if isinstance(device, str) else device
    metric = settings.metric
    query, gallery = prepare_pair(qf, gf, metric, settings.normalize)
    q_pids = _ids(q_pids, "query person ids", len(query))
    q_camids = _ids(q_camids, "query camera ids", len(query))
    accumulator = RankAccumulator(
        _ids(g_pids, "gallery person ids", len(gallery)),
        _ids(g_camids, "gallery camera ids", len(gallery)),
        max_rank=settings.max_rank,
        mode=settings.mode,
    )
    if settings.qe:
        query, gallery = query_expansion(query, gallery, k=settings.qe_k, alpha=settings.qe_alpha)
        if settings.normalize or metric == "cosine":
            query, gallery = l2_normalize(query), l2_normalize(gallery)
    if settings.rerank:
        params = {"k1": settings.k1, "k2": settings.k2, "lambda_value": settings.lambda_value}
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
    result.update(metric=metric, normalize=settings.normalize, rerank=settings.rerank, qe=settings.qe)
    if settings.rerank:
        result.update(params)
    if settings.qe:
        result.update(qe_k=settings.qe_k, qe_alpha=settings.qe_alpha)
    return result


def _ids(values: Any, name: str, expected: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != expected:
        raise ReidError(
            f"{name}: got {array.shape[0] if array.ndim else 0} ids for {expected} feature rows; "
            "pass one id per feature row, in the same order"
        )
    return array
