"""Evaluate a model on a query/gallery split: extract its features, then the metric pipeline.

It sits above extraction and :mod:`reid_stra.metrics` (a leaf that knows no model).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.metrics.evaluation import EvalSettings, evaluate_features
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.extract import extract_features
from reid_stra.retrieval.features import FeatureMeta, save_features


def evaluate_model(
    model: nn.Module,
    query: Sequence[Any],
    gallery: Sequence[Any],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    workers: int = 2,
    input_size: Sequence[int] | None = None,
    flip: bool = False,
    settings: EvalSettings | None = None,
    progress: bool = True,
    precision: str = "fp32",
    keep_features: bool = False,
    **values: Any,
) -> dict[str, Any]:
    """Extract query and gallery features with ``model`` and evaluate them.

    ``query``/``gallery`` are lists of ``Sample(path, pid, camid)``. Preprocessing (input size,
    mean, std) comes from ``model.pretrained_cfg`` unless ``input_size`` overrides it; ``flip``
    averages each image's features with its mirror's. The model's train/eval mode is restored.
    ``keep_features`` adds ``features: {"query": qf, "gallery": gf}`` (to save them, or to draw a
    report's ranked lists without extracting again). ``settings`` (:class:`EvalSettings`, keyword
    ``values`` replacing some) say how features are compared and scored.
    """
    settings = (settings or EvalSettings()).with_values(**values)  # checked before any extraction
    if not query or not gallery:
        raise ReidError("evaluation needs query and gallery images; the dataset has an empty split")
    wrapped = getattr(model, "module", None)  # DistributedDataParallel / DataParallel
    cfg = getattr(model, "pretrained_cfg", None) or getattr(wrapped, "pretrained_cfg", None)
    if cfg is None:  # a model built elsewhere: the defaults (256x128, ImageNet mean and std)
        cfg = PretrainedCfg(name=type(model).__name__)
    size = tuple(input_size or cfg.input_size)
    options = {
        "batch_size": batch_size,
        "workers": workers,
        "device": device,
        "input_size": size,
        "mean": cfg.mean,
        "std": cfg.std,
        "flip": flip,
        "progress": progress,
        "precision": precision,
    }
    qf = extract_features(model, [s.path for s in query], **options)
    gf = extract_features(model, [s.path for s in gallery], **options)
    result = evaluate_features(
        qf,
        gf,
        [s.pid for s in query],
        [s.pid for s in gallery],
        [s.camid for s in query],
        [s.camid for s in gallery],
        settings,
        device=device,
        progress=progress,
    )
    result.update(
        flip=flip,
        precision=precision,
        input_size=list(size),
        num_query_images=len(qf),
        num_gallery_images=len(gf),
    )
    if keep_features:
        result["features"] = {"query": qf, "gallery": gf}
    return result


def save_split_features(
    out_dir: str | os.PathLike,
    features: dict[str, np.ndarray],
    query: Sequence[Any],
    gallery: Sequence[Any],
    model_info: dict[str, Any],
    *,
    input_size: Sequence[int],
    flip: bool = False,
    precision: str = "fp32",
) -> dict[str, str]:
    """Write ``evaluate_model(..., keep_features=True)``'s features as ``query.npy`` and
    ``gallery.npy`` (with sidecars holding paths and ids) into ``out_dir``, so that re-ranking or
    query-expansion experiments reuse them: ``evaluate --query-features DIR/query.npy ...``."""

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReidError(f"--save-features {out}: exists and is not a folder; give a folder to write into")
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, samples in (("query", query), ("gallery", gallery)):
        meta = FeatureMeta.from_model_info(
            model_info,
            [s.path for s in samples],
            pids=[s.pid for s in samples],
            camids=[s.camid for s in samples],
            input_size=input_size,
            normalized=False,  # as extracted; evaluate --normalize applies on reading
            flip=flip,
            precision=precision,
        )
        path = out / f"{name}.npy"
        save_features(path, np.ascontiguousarray(features[name], dtype=np.float32), meta)
        written[name] = str(path)
    return written
