"""``reid-stra export``: one self-contained file a tracker (BoxMOT, deep-sort) can load.

The convention of torchreid and BoxMOT: input ``images`` is N x 3 x H x W float32, RGB,
normalized with the model's mean/std (ImageNet); output ``features`` is N x D; the batch is
dynamic. The model is exported in eval mode (BatchNorm uses its running statistics). Whether
the graph L2-normalizes the embedding is a choice, stated in ``<file>.metadata.json`` with the
fields BoxMOT's ONNX backend reads plus ours (mean, std, embedding size, source weights).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_stra._version import __version__
from reid_stra.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_json, atomic_write_with

FORMATS = ("onnx", "torchscript")
INPUT_NAME = "images"
OUTPUT_NAME = "features"
OPSET = 18
BOXMOT_SCHEMA_VERSION = 1  # BoxMOT's artifact-metadata and model_kwargs schema version
OUR_KEY = "reid_stra"  # our own fields in the sidecar, under one key BoxMOT does not read


def our_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Our fields of a sidecar: under ``OUR_KEY`` (top level in exports before that key existed)."""
    return meta[OUR_KEY] if isinstance(meta.get(OUR_KEY), dict) else meta


EXPORT_EXTRA = "pip install 'reid-stra[export]'"


class _Embedding(nn.Module):
    """The model's test-time embedding, optionally L2-normalized inside the graph."""

    def __init__(self, model: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.normalize = normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model(images)
        if self.normalize:
            features = nn.functional.normalize(features, dim=1)
        return features


@dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata_path: Path
    format: str
    sha256: str
    size_bytes: int


def metadata_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".metadata.json")


def export_model(
    model: nn.Module,
    info: dict[str, Any],
    out: str | os.PathLike,
    *,
    format: str = "onnx",
    normalize: bool = True,
    opset: int = OPSET,
) -> ExportResult:
    """Export ``model`` (as :func:`~reid_stra.models.load_model` returned it, with ``info``)."""
    if format not in FORMATS:
        raise ReidError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    cfg = info["cfg"]
    height, width = (int(v) for v in cfg.input_size)
    wrapper = _Embedding(model.cpu(), normalize).eval()
    example = torch.randn(2, 3, height, width)
    if format == "onnx":
        data = _onnx_bytes(wrapper, example, opset)
    else:
        data = _torchscript_bytes(wrapper, example)
    atomic_write_with(out, lambda handle: handle.write(data))
    sha256 = hashlib.sha256(data).hexdigest()
    meta = sidecar(info, format=format, sha256=sha256, normalize=normalize, opset=opset)
    atomic_write_json(metadata_path(out), meta)
    return ExportResult(out, metadata_path(out), format, sha256, len(data))


def sidecar(info: dict[str, Any], *, format: str, sha256: str, normalize: bool, opset: int) -> dict[str, Any]:
    """The ``.metadata.json`` of an export: BoxMOT's fields with BoxMOT's meaning, ours under ``OUR_KEY``."""
    cfg = info["cfg"]
    height, width = (int(v) for v in cfg.input_size)
    return {
        # BoxMOT's artifact sidecar, with BoxMOT's meaning (its reid.core.artifacts / registry):
        # the architecture name, the crop size in its versioned model_kwargs, and how crops are
        # cut ("resize": a plain resize to img_size; BoxMOT then applies ImageNet mean/std).
        "schema_version": BOXMOT_SCHEMA_VERSION,
        "model_name": info["model"],
        "model_kwargs_schema_version": BOXMOT_SCHEMA_VERSION,
        "model_kwargs": {"img_size": [height, width], "feat_dim": int(cfg.embedding_dim)},
        "preprocess": "resize",
        # ours
        OUR_KEY: {
            "format": format,
            "input_name": INPUT_NAME,
            "output_names": [OUTPUT_NAME],
            "dynamic_batch": True,
            "opset": opset if format == "onnx" else None,
            "artifact_sha256": sha256,
            "img_size": [height, width],
            "input_layout": "NCHW float32 RGB, (pixel/255 - mean) / std",
            "mean": [float(v) for v in cfg.mean],
            "std": [float(v) for v in cfg.std],
            "imagenet_normalization": (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD),
            "embedding_dim": int(cfg.embedding_dim),
            "normalized": bool(normalize),
            "source_weights": info.get("weights"),
            "source_weights_sha256": info.get("weights_sha256"),
            "tool_version": __version__,
        },
    }


def _onnx_bytes(wrapper: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    """The dynamo-based exporter (the TorchScript-based one fails on StRA's gathers)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ReidError(f"--format onnx needs the onnx and onnxscript packages; {EXPORT_EXTRA}") from None
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"images": {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )

    return program.model_proto.SerializeToString()


def _torchscript_bytes(wrapper: nn.Module, example: torch.Tensor) -> bytes:

    with torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        traced = torch.jit.freeze(traced.eval())
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()
