"""Evaluation: the re-ID ranking protocol, distances, k-reciprocal re-ranking, query expansion.

``evaluate_rank`` needs only numpy; the feature/model pipelines (torch, FAISS) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reid_stra.metrics.rank import MODES, RankAccumulator, evaluate_rank

if TYPE_CHECKING:  # pragma: no cover
    from reid_stra.metrics.evaluation import evaluate_features, evaluate_model

__all__ = ["MODES", "RankAccumulator", "evaluate_rank", "evaluate_features", "evaluate_model"]

_LAZY = {
    "evaluate_features": "reid_stra.metrics.evaluation",
    "evaluate_model": "reid_stra.metrics.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reid_stra.metrics' has no attribute {name!r}")
