"""Evaluate two feature files (query, gallery) as `reid-stra evaluate --query-features` does.

The person and camera id of every row come from the files' sidecars; a labelled dataset's
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

from reid_stra.data.datasets import Sample
from reid_stra.errors import ReidError
from reid_stra.metrics.evaluation import evaluate_features
from reid_stra.retrieval.features import FeatureMeta, check_compatible, load_features
from reid_stra.utils.notice import Notice, silent


@dataclass
class FeatureFileEvaluation:
    result: dict[str, Any]  # what evaluate_features returns, plus the features for ranked lists
    source: dict[str, Any]  # which files and model the numbers are about
    query: list[Sample]  # one per evaluated query row
    gallery: list[Sample]


def evaluate_feature_files(
    query_file: Path,
    gallery_file: Path,
    *,
    labelled: Iterable[Sample] | None = None,
    device: str = "cpu",
    notice: Notice = silent,
    **settings: Any,
) -> FeatureFileEvaluation:
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
    return FeatureFileEvaluation(result, source, query, gallery)


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
