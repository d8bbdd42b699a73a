"""Datasets, image reading, transforms and samplers.

The common names are importable from here (``from reid_stra.data import load_dataset``); they
are loaded lazily so that importing the package does not pay for torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Sample": "reid_stra.data.datasets",
    "ReidDataset": "reid_stra.data.datasets",
    "load_dataset": "reid_stra.data.datasets",
    "list_datasets": "reid_stra.data.datasets",
    "dataset_info": "reid_stra.data.datasets",
    "parse_market_name": "reid_stra.data.datasets",
    "verify_images": "reid_stra.data.datasets",
    "make_synthetic_dataset": "reid_stra.data.synthetic",
    "read_image": "reid_stra.data.images",
    "build_train_transform": "reid_stra.data.transforms",
    "build_eval_transform": "reid_stra.data.transforms",
    "ImageDataset": "reid_stra.data.loading",
    "build_train_loader": "reid_stra.data.loading",
    "RandomIdentitySampler": "reid_stra.data.samplers",
    "ShuffleSampler": "reid_stra.data.samplers",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'reid_stra.data' has no attribute {name!r}")
