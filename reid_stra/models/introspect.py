"""Looking inside StRA models: which blocks have Mode Attention, and their pooling maps P.

Used by ``reid-stra explain`` (:func:`compute_mode_maps` runs the model; ``viz.modes`` only
draws what it is given): each mode's softmax pooling weights over positions (the pooling
map of docs/METHOD.md §3) show where in the image that mode gathers its modal vector.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from reid_stra.data.transforms import build_eval_transform
from reid_stra.errors import ReidError
from reid_stra.models.layers.local_attention import LocalAttention
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.mode_record import record_mode_pooling
from reid_stra.utils.precision import Precision

# The residual block that owns a Mode Attention module: "layer4.0", "features.15", "stra_tail".
_BLOCK_NAME = re.compile(r"^(layer\d+\.\d+|features\.\d+|stra_tail)")


def block_name(module_name: str) -> str:
    """Short name of the block holding the module (``layer4.0.conv2.moe`` -> ``layer4.0``)."""
    match = _BLOCK_NAME.match(module_name)
    return match.group(1) if match else module_name


def mode_blocks(model: nn.Module) -> list[tuple[str, ModeAttention]]:
    """(block name, Mode Attention module) in forward order; empty for models without StRA."""
    return [
        (block_name(name), module)
        for name, module in model.named_modules()
        if isinstance(module, ModeAttention)
    ]


def stra_parameter_names(model: nn.Module) -> set[str]:
    """Parameters of StRA's own layers (Local and Mode Attention): new in a pretrained network."""
    return {
        f"{name}.{param_name}" if name else param_name
        for name, module in model.named_modules()
        if isinstance(module, (LocalAttention, ModeAttention))
        for param_name, _ in module.named_parameters()
    }


class ModeMaps(list):
    """Pooling weights P (B x G x h x w, detached), one entry per block per forward, in order.

    ``names[i]`` is the block of entry ``i``; :meth:`by_block` concatenates the batches of
    several forwards per block.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def by_block(self) -> dict[str, torch.Tensor]:
        grouped: dict[str, list[torch.Tensor]] = {}
        for name, weights in zip(self.names, self, strict=True):
            grouped.setdefault(name, []).append(weights)
        return {name: torch.cat(parts) for name, parts in grouped.items()}


@contextlib.contextmanager
def capture_mode_maps(model: nn.Module) -> Iterator[ModeMaps]:
    """Collect every Mode Attention block's pooling weights during forwards inside the block."""
    names = {id(module): name for name, module in mode_blocks(model)}
    maps = ModeMaps()
    try:
        with record_mode_pooling() as record:
            yield maps
    finally:
        for entry in record:
            if id(entry.module) in names:  # only this model's blocks
                maps.append(entry.weights.detach())
                maps.names.append(names[id(entry.module)])


def compute_mode_maps(
    model: nn.Module,
    crops: Sequence[Image.Image],
    *,
    input_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``crops`` and return each StRA block's pooling weights, (N, G, h, w) per block."""

    if not mode_blocks(model):
        raise ReidError(
            "this model has no StRA Mode Attention blocks; pick a stra_* model (see `reid-stra models`)"
        )
    transform = build_eval_transform(input_size, mean, std)
    batch = torch.stack([transform(crop) for crop in crops]).to(device)
    model.eval()

    with (
        torch.inference_mode(),
        Precision(precision, "").autocast(batch.device),
        capture_mode_maps(model) as maps,
    ):
        model(batch)
    return {name: weights.float().cpu().numpy() for name, weights in maps.by_block().items()}
