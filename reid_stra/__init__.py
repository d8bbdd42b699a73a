"""reid-stra: person re-identification with Structure-Regularized Attention.

The public API is small and stable; the CLI uses exactly these functions::

    import reid_stra
    features = reid_stra.Embedder().embed(crops)   # list of H x W x 3 uint8 RGB crops -> N x D
    model = reid_stra.build_model("stra_resnet50", num_classes=0, pretrained=None)
    reid_stra.load_weights(model, "model.pth")
    reid_stra.list_models()
    reid_stra.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reid_stra._version import __version__
from reid_stra.errors import ReidError

if TYPE_CHECKING:  # pragma: no cover
    from reid_stra.metrics.rank import evaluate_rank
    from reid_stra.models import build_model, list_models, load_weights
    from reid_stra.retrieval.boxes import crop_boxes
    from reid_stra.retrieval.embedder import Embedder

__all__ = [
    "__version__",
    "ReidError",
    "Embedder",
    "crop_boxes",
    "build_model",
    "list_models",
    "load_weights",
    "evaluate_rank",
]

# Imported lazily so `reid-stra --help` does not pay for importing torch.
_LAZY = {
    "Embedder": "reid_stra.retrieval.embedder",
    "crop_boxes": "reid_stra.retrieval.boxes",
    "build_model": "reid_stra.models",
    "list_models": "reid_stra.models",
    "load_weights": "reid_stra.models",
    "evaluate_rank": "reid_stra.metrics.rank",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reid_stra' has no attribute {name!r}")
