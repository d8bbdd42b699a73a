"""``Embedder``: the one documented way to embed person crops from Python (trackers, notebooks).

It applies the model's own preprocessing (input size, mean/std recorded with its weights, never
guessed), so forgetting to normalize, or normalizing twice, cannot happen. ``reid-stra extract``
loads its model through the same class, and both run batches through
:func:`~reid_stra.retrieval.extract.embed_batch`.

    from reid_stra import Embedder
    features = Embedder().embed(crops)        # N x D float32, L2-normalized
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from reid_stra.data.images import read_image
from reid_stra.data.transforms import normalize_batch, resize_to_uint8
from reid_stra.deploy.backend import load_inference_model
from reid_stra.errors import ReidError
from reid_stra.retrieval.extract import Preprocess, embed_batch, make_forward
from reid_stra.utils.device import resolve_device
from reid_stra.utils.precision import Precision, resolve_precision

Crop = Any  # numpy H x W x 3 uint8, PIL image, path, or 3 x H x W tensor


class Embedder:
    """A loaded model plus its preprocessing; ``embed(crops)`` returns an N x D float32 array.

    ``model``/``weights``: as ``reid-stra extract --model/--weights`` (default: the shipped
    default model). ``normalize``: L2-normalize each embedding (what search and trackers expect).
    ``precision``: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see :mod:`reid_stra.utils.precision`);
    the chosen one and why are in ``self.precision``. ``backend``: ``auto``, ``pytorch`` or
    ``onnxruntime`` (see :mod:`reid_stra.deploy.backend`: ``auto`` runs fp32 on a CPU with ONNX
    Runtime when it is installed, exporting the weights once into a cache); what runs and why is in
    ``self.info["backend"]`` and ``self.info["backend_reason"]``.
    """

    def __init__(
        self,
        model: str | None = None,
        weights: str | os.PathLike | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        normalize: bool = True,
        optimize: bool = True,
        precision: str = "auto",
        backend: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ReidError(f"batch_size {batch_size}: must be at least 1")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model, self.info = load_inference_model(
            model, weights, device=str(self.device), backend=backend, precision=self.precision.name
        )
        if self.info["precision"] != self.precision.name:  # ONNX Runtime: the graph as exported
            self.precision = Precision(self.info["precision"], "ONNX Runtime runs the exported float32 graph")
        self.batch_size = batch_size
        self.preprocess = Preprocess.for_model(
            self.info["cfg"], normalize=normalize, precision=self.precision.name
        )
        self._optimize = optimize
        self._forward = None  # built on first use: extract only needs the model and its info

    @property
    def dim(self) -> int:
        return int(self.info["cfg"].embedding_dim)

    def embed(self, crops: Sequence[Crop] | np.ndarray | torch.Tensor, *, bgr: bool = False) -> np.ndarray:
        """Embed ``crops``: a list of numpy H x W x 3 uint8 arrays (RGB; BGR with ``bgr=True``, as
        OpenCV gives them), PIL images or image paths, or an N x 3 x H x W tensor (uint8, or float
        in [0, 1]). Returns N x D float32 in input order (0 x D for no crops: a frame with nobody)."""
        batch = self._to_model_input(crops, bgr)
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._forward is None:
            self._forward = make_forward(self.model, self.device, self._optimize, self.precision.name)
        parts = []
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                parts.append(
                    embed_batch(
                        self._forward, batch[start : start + self.batch_size], self.device, self.preprocess
                    )
                )
        return np.concatenate(parts)

    def predict(self, crops: Sequence[Crop], *, bgr: bool = True) -> list[np.ndarray]:
        """deep_sort_realtime's embedder contract: BGR crops cut from an OpenCV frame in, a list
        of one 1-D float32 embedding per crop out (pass it as ``update_tracks(..., embeds=...)``);
        no crops, no embeddings (``[]``), as deep_sort_realtime's own embedders answer."""
        return list(self.embed(crops, bgr=bgr))

    # -- input conversion ------------------------------------------------------------------

    def _to_model_input(self, crops: Any, bgr: bool) -> torch.Tensor:
        if isinstance(crops, torch.Tensor):
            return self._tensor_batch(crops, bgr)
        if isinstance(crops, np.ndarray) and crops.ndim == 4:
            crops = list(crops)
        if isinstance(crops, (str, os.PathLike, Image.Image)) or (
            isinstance(crops, np.ndarray) and crops.ndim == 3
        ):
            raise ReidError(
                "embed: pass a list of crops (one crop given alone is ambiguous); e.g. embed([crop])"
            )
        crops = list(crops)
        if not crops:
            return torch.zeros(0, 3, *self.preprocess.input_size)
        size = self.preprocess.input_size
        resized = [resize_to_uint8(_as_pil(crop, index, bgr), size) for index, crop in enumerate(crops)]
        return normalize_batch(torch.stack(resized), self.preprocess.mean, self.preprocess.std)

    def _tensor_batch(self, batch: torch.Tensor, bgr: bool) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ReidError(f"embed: a tensor batch must be N x 3 x H x W, got {tuple(batch.shape)}")
        if batch.shape[0] == 0:
            return torch.zeros(0, 3, *self.preprocess.input_size)
        if bgr:
            batch = batch.flip(1)
        if batch.dtype == torch.uint8:  # the exact path of image files: PIL resize
            size = self.preprocess.input_size
            resized = torch.stack([resize_to_uint8(TF.to_pil_image(image), size) for image in batch.cpu()])
            return normalize_batch(resized, self.preprocess.mean, self.preprocess.std)
        if not batch.is_floating_point():
            raise ReidError(f"embed: a tensor batch must be uint8 or float in [0, 1], got {batch.dtype}")
        if float(batch.min()) < 0 or float(batch.max()) > 1:
            raise ReidError("embed: a float tensor batch must hold pixel values in [0, 1] (not normalized)")
        resized = TF.resize(batch.float().cpu(), list(self.preprocess.input_size), antialias=True)
        return TF.normalize(resized, list(self.preprocess.mean), list(self.preprocess.std))


def _as_pil(crop: Crop, index: int, bgr: bool) -> Image.Image:
    if isinstance(crop, (str, os.PathLike)):
        return read_image(crop)
    if isinstance(crop, Image.Image):
        return crop.convert("RGB")
    if isinstance(crop, np.ndarray):
        if crop.dtype != np.uint8:
            raise ReidError(f"embed: crop {index} is a {crop.dtype} array; expected uint8 H x W x 3 (0-255)")
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise ReidError(
                f"embed: crop {index} has shape {crop.shape}; expected H x W x 3 (colour, channels last)"
            )
        if min(crop.shape[:2]) < 1:
            raise ReidError(f"embed: crop {index} is empty ({crop.shape[0]} x {crop.shape[1]} pixels)")
        return Image.fromarray(np.ascontiguousarray(crop[:, :, ::-1] if bgr else crop))
    raise ReidError(
        f"embed: crop {index} is a {type(crop).__name__}; expected a numpy array, PIL image or image path"
    )
