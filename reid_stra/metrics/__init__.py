"""Evaluation: the re-ID ranking protocol, distances, k-reciprocal re-ranking, query expansion.

``evaluate_rank`` needs only numpy; the feature pipeline (torch, FAISS) loads on first use.
Evaluating a model is :func:`reid_stra.retrieval.evaluation.evaluate_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reid_stra.metrics.rank import MODES, RankAccumulator, evaluate_rank

if TYPE_CHECKING:  # pragma: no cover
    from reid_stra.metrics.evaluation import evaluate_features

__all__ = ["MODES", "RankAccumulator", "evaluate_rank", "evaluate_features"]

_LAZY = {
    "evaluate_features": "reid_stra.metrics.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reid_stra.metrics' has no attribute {name!r}")
