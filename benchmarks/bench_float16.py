"""`extract --dtype float16`: what storing features in half the bytes costs in accuracy.

The shipped default's features of Market-1501-mini's test split and CUHK03-detected's
query/gallery, evaluated as extracted (float32) and after the round trip through float16 that a
``--dtype float16`` file makes (the same conversion ``save_features`` does). Deterministic: no seed.

    .venv/bin/python -m benchmarks.bench_float16
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reid_stra.data import load_dataset
from reid_stra.metrics.evaluation import evaluate_features
from reid_stra.models import load_model
from reid_stra.retrieval.evaluation import evaluate_model
from reid_stra.utils.precision import cpu_model_name

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOTS = (SHARED / "Market-1501-mini", SHARED / "CUHK03-detected")


def _as_stored_float16(features: np.ndarray) -> np.ndarray:
    """L2-normalized (as `extract` stores them by default), through float16 and back."""
    normalized = features / np.linalg.norm(features, axis=1, keepdims=True)
    return normalized.astype(np.float16).astype(np.float32)


def main() -> None:
    model, _ = load_model(None, None)
    print(f"CPU: {cpu_model_name()}")
    print("| data | float32 mAP | float16 mAP | float32 rank-1 | float16 rank-1 |")
    print("|---|---|---|---|---|")
    for root in ROOTS:
        data = load_dataset("market1501", root, splits=("query", "gallery"))
        full = evaluate_model(model, data.query, data.gallery, keep_features=True, progress=False)
        qf, gf = (_as_stored_float16(full["features"][k]) for k in ("query", "gallery"))
        ids = ([s.pid for s in data.query], [s.pid for s in data.gallery])
        cams = ([s.camid for s in data.query], [s.camid for s in data.gallery])
        half = evaluate_features(qf, gf, *ids, *cams)
        print(
            f"| {root.name} | {full['mAP']:.4f} | {half['mAP']:.4f} | {full['rank1']:.4f} | "
            f"{half['rank1']:.4f} |"
        )


if __name__ == "__main__":
    main()
