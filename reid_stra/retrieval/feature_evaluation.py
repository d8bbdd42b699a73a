"""One evaluation as `reid-stra evaluate` runs it: a model on a dataset's query/gallery, or two
feature files (``--query-features``), with where the numbers came from.

For feature files, the person and camera id of every row come from the files' sidecars; a labelled dataset's
query/gallery fills the rows whose sidecar lacks them (features extracted from a folder whose
names are not Market-style). Rows that still have no ids are left out, with a notice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid_stra.data.datasets import ReidDataset, Sample
from reid_stra.errors import ReidError
from reid_stra.metrics.evaluation import SETTINGS, evaluate_features
from reid_stra.retrieval.features import FeatureMeta, check_compatible, load_features
from reid_stra.utils.notice import Notice, silent


@dataclass
class EvaluationRun:
    """One evaluated model (or pair of feature files), with what a report or saved features need."""

    result: dict[str, Any]  # what evaluate_features returns, plus the features for ranked lists
    source: dict[str, Any]  # which data, files and model the numbers are about
    query: list[Sample]  # one per evaluated query row
    gallery: list[Sample]
    model_info: dict[str, Any] | None = None  # load_inference_model's, when a model was run

    def summary(self) -> dict[str, Any]:
        """The numbers and settings as ``evaluate --json`` reports them (no per-query arrays)."""
        keys = ("mode", "rank1", "rank5", "rank10", "mAP", "mINP", "num_queries", "num_valid", "num_invalid")
        result = self.result
        return {
            **{key: result[key] for key in keys},
            "settings": {key: result[key] for key in SETTINGS if key in result},
            "source": self.source,
            "max_rank": result["max_rank"],
            "cmc": [float(v) for v in result["cmc"]],
        }


def evaluate_on_dataset(
    dataset: ReidDataset,
    model: str | None,
    weights: str | os.PathLike | None,
    *,
    device: str = "cpu",
    backend: str = "auto",
    precision: str = "fp32",
    flip: bool = False,
    batch_size: int = 64,
    workers: int = 2,
    keep_features: bool = False,
    notice: Notice = silent,
    progress: bool = True,
    **settings: Any,
) -> EvaluationRun:
    """Load ``model``/``weights`` (any checkpoint or ONNX file) and score it on ``dataset``'s
    query/gallery; ``settings`` are evaluate_features'."""
    from reid_stra.deploy.backend import load_inference_model
    from reid_stra.retrieval.evaluation import evaluate_model

    net, model_info = load_inference_model(
        model, weights, device=str(device), backend=backend, precision=precision
    )
    notice(model_info["backend_reason"])
    notice(
        f"evaluating {model_info['model']} ({model_info['weights']}) on {dataset.name}: "
        f"{len(dataset.query)} query, {len(dataset.gallery)} gallery images"
    )
    precision = model_info["precision"]  # an ONNX graph runs as exported
    result = evaluate_model(
        net, dataset.query, dataset.gallery, device=device, batch_size=batch_size, workers=workers, flip=flip,
        precision=precision, keep_features=keep_features, progress=progress, **settings,
    )  # fmt: skip
    source = {
        "data": dataset.name,
        "root": str(dataset.root),
        "model": model_info["model"],
        "weights": model_info["weights"],
        "weights_sha256": model_info["weights_sha256"],
        "input_size": list(result["input_size"]),
        "flip": flip,
        "precision": precision,
        "backend": model_info["backend"],
    }
    return EvaluationRun(result, source, list(dataset.query), list(dataset.gallery), model_info)


def evaluate_feature_files(
    query_file: Path,
    gallery_file: Path,
    *,
    labelled: Iterable[Sample] | None = None,
    device: str = "cpu",
    notice: Notice = silent,
    **settings: Any,
) -> EvaluationRun:
    """Score ``query_file`` against ``gallery_file``; ``labelled`` (a dataset's query + gallery
    samples) gives ids to rows whose sidecar has none; ``settings`` are evaluate_features'."""
    qf, q_meta = load_features(query_file)
    gf, g_meta = load_features(gallery_file)
    check_compatible(q_meta, g_meta, str(query_file), str(gallery_file))
    lookup = ids_by_path(labelled) if labelled is not None else None
    qf, query = _rows_with_ids(qf, q_meta, query_file, lookup, notice)
    gf, gallery = _rows_with_ids(gf, g_meta, gallery_file, lookup, notice)
    notice(f"evaluating features {query_file} ({len(qf)} query) against {gallery_file} ({len(gf)} gallery)")
    result = evaluate_features(
        qf,
        gf,
        [s.pid for s in query],
        [s.pid for s in gallery],
        [s.camid for s in query],
        [s.camid for s in gallery],
        device=device,
        **settings,
    )
    result["features"] = {"query": qf, "gallery": gf}  # for a report's ranked lists
    source = {
        "query_features": str(query_file),
        "gallery_features": str(gallery_file),
        "model": q_meta.model,
        "weights": q_meta.weights,
        "flip": bool(q_meta.flip),
    }
    return EvaluationRun(result, source, query, gallery)


def ids_by_path(samples: Iterable[Sample]) -> dict[str, tuple[int, int]]:
    """Absolute image path -> (person id, camera id)."""
    return {os.path.abspath(s.path): (s.pid, s.camid) for s in samples}


def _ids_of(meta: FeatureMeta, path: Path, lookup: dict[str, tuple[int, int]] | None) -> tuple[list, list]:
    """Person and camera ids of each row (``None`` where unknown): from the sidecar, with the
    labelled samples' ids filling rows the sidecar lacks."""
    pids = list(meta.pids) if meta.pids is not None else [None] * len(meta.paths)
    camids = list(meta.camids) if meta.camids is not None else [None] * len(meta.paths)
    unknown = [row for row, (p, c) in enumerate(zip(pids, camids, strict=True)) if p is None or c is None]
    if unknown and lookup is not None:
        missing = [meta.paths[row] for row in unknown if os.path.abspath(meta.paths[row]) not in lookup]
        if missing:
            raise ReidError(
                f"{path}: {len(missing)} of its images are not in the dataset's query/gallery "
                f"(e.g. {missing[0]}); extract features from the dataset's own folders"
            )
        for row in unknown:
            pids[row], camids[row] = lookup[os.path.abspath(meta.paths[row])]
    elif len(unknown) == len(pids):
        raise ReidError(
            f"{path}: its sidecar has no person/camera ids (file names not Market-style); "
            "add --data NAME --root DIR to take them from the dataset, or re-extract with --ids FILE.csv"
        )
    return pids, camids


def _rows_with_ids(
    features: np.ndarray,
    meta: FeatureMeta,
    path: Path,
    lookup: dict[str, tuple[int, int]] | None,
    notice: Notice,
) -> tuple[np.ndarray, list[Sample]]:
    """The rows that have ids, as samples (evaluation needs an id for every row it scores)."""
    pids, camids = _ids_of(meta, path, lookup)
    keep = [
        row for row, (p, c) in enumerate(zip(pids, camids, strict=True)) if p is not None and c is not None
    ]
    if len(keep) < len(pids):
        notice(
            f"{path}: {len(pids) - len(keep)} of {len(pids)} rows have no person/camera id; "
            f"evaluating the other {len(keep)}"
        )
        features = features[keep]
    return features, [Sample(meta.paths[row], pids[row], camids[row]) for row in keep]
