"""Run an exported ``.onnx`` file where a PyTorch model is expected (``--weights model.onnx``).

ONNX Runtime on the CPU (the CUDA provider when the device is CUDA and it is installed). The
preprocessing comes from the export's ``.metadata.json``, so the features match the PyTorch
model's; the embedding's L2 normalization, if the graph has it, is idempotent for callers that
normalize again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_stra.deploy.export import EXPORT_EXTRA, metadata_path, our_metadata
from reid_stra.errors import ReidError
from reid_stra.models.cfg import PretrainedCfg


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session behind the ``model(images) -> (B, D)`` interface."""

    #: the extraction code must not try to trace or fuse this module
    inference_ready = True

    def __init__(
        self, path: str | os.PathLike, device: str = "cpu", cfg: PretrainedCfg | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        # How to feed it (what evaluate_model and the trainer-free code paths read), from the metadata.
        self.pretrained_cfg = cfg
        try:
            import onnxruntime as ort
        except ImportError:
            raise ReidError(
                f"--weights {path}: running ONNX files needs onnxruntime; {EXPORT_EXTRA}"
            ) from None
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ReidError(
                f"--weights {path}: not a loadable ONNX model ({' '.join(str(exc).split())[:160]})"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.providers = self.session.get_providers()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = None if self.pretrained_cfg is None else self.pretrained_cfg.input_size
        if size is not None and tuple(images.shape[2:]) != tuple(size):
            raise ReidError(
                f"--weights {self.path}: exported for {size[0]}x{size[1]} input, got "
                f"{images.shape[2]}x{images.shape[3]}; drop --height/--width (or re-export at that size)"
            )
        array = images.detach().float().cpu().contiguous().numpy()
        (features,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(np.ascontiguousarray(features)).to(images.device)


def load_onnx_model(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model and the ``load_model``-style info for an exported ONNX file and its metadata."""
    path = Path(path)
    meta_file = metadata_path(path)
    if not path.is_file():
        raise ReidError(f"--weights {path}: file not found")
    try:
        sidecar = json.loads(meta_file.read_text(encoding="utf-8"))
        meta = our_metadata(sidecar)
        size = [int(v) for v in meta["img_size"]]
        cfg = PretrainedCfg(
            name=str(sidecar["model_name"]),
            input_size=(size[0], size[1]),
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            embedding_dim=int(meta["embedding_dim"]),
        )
    except FileNotFoundError:
        raise ReidError(
            f"--weights {path}: no {meta_file.name} beside it (input size and mean/std are needed); "
            "re-export with `reid-stra export`"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReidError(f"--weights {path}: unreadable {meta_file.name} ({exc}); re-export it") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = OnnxRuntimeModel(path, device, cfg)
    info = {
        "model": cfg.name,
        "cfg": cfg,
        "weights": str(path),
        "weights_sha256": digest,
        "backend": "onnxruntime",
        "normalized_in_graph": bool(meta.get("normalized", False)),
        "source_weights_sha256": meta.get("source_weights_sha256"),
        "load_report": None,
    }
    return model, info
