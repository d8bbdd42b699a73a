"""Small synthetic galleries for index and search tests: re-ID-shaped features saved as feature files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.features import FeatureMeta, save_features

# What load_model says of a model, for feature files that need no real model behind them.
TOY_MODEL_INFO = {
    "model": "toy",
    "weights": "toy.pth",
    "weights_sha256": "0" * 64,
    "cfg": PretrainedCfg(
        "toy", input_size=(64, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), embedding_dim=16
    ),
}


def clustered(ids: int = 200, views: int = 10, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Re-ID-like: noisy L2-normalized views around identity centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim)).astype(np.float32)
    feats = np.repeat(centres, views, axis=0) + 0.4 * rng.standard_normal((ids * views, dim)).astype(
        np.float32
    )
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


def save_gallery(folder: Path, feats: np.ndarray, name: str = "gallery.npy", prefix: str = "/g") -> Path:
    """``feats`` as ``folder/name`` with a sidecar naming row i ``{prefix}/{i}.jpg``."""
    path = folder / name
    meta = FeatureMeta(
        paths=[f"{prefix}/{i}.jpg" for i in range(len(feats))], model="m", embedding_dim=feats.shape[1]
    )
    save_features(path, feats, meta)
    return path
