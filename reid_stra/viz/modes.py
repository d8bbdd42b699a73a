"""Draw StRA mode pooling weights as heat maps over person crops (`reid-stra explain`).

Each Mode Attention block pools its G modes with softmax weights P over the positions (spec
§3, step 1). The paper's claim is that modes settle on distinct body parts without supervision;
this picture lets a user check that on their own images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from reid_stra.utils.atomic import atomic_write_with
from reid_stra.viz.colormap import apply_colormap

_LABEL_HEIGHT = 24  # two text lines above each panel
_GAP = 4


def normalize_map(weights: np.ndarray) -> np.ndarray:
    """Scale one mode's pooling weights to [0, 1] for display (per map: shapes, not magnitudes)."""
    low, high = float(weights.min()), float(weights.max())
    return np.zeros_like(weights) if high - low < 1e-12 else (weights - low) / (high - low)


def overlay(crop: Image.Image, weights: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """Blend a heat map of ``weights`` (h x w) over ``crop``, upsampled to the crop's size."""
    heat = Image.fromarray(apply_colormap(normalize_map(weights)))
    heat = heat.resize(crop.size, Image.Resampling.BILINEAR)
    return Image.blend(crop.convert("RGB"), heat, alpha)


def draw_mode_maps(
    crops: Sequence[Image.Image],
    maps: Mapping[str, np.ndarray],
    out: str | os.PathLike,
    *,
    titles: Sequence[str] | None = None,
    size: tuple[int, int] = (128, 64),
) -> None:
    """Write one row per (image, block): the crop, then one heat-map panel per mode.

    ``maps`` maps a block name (e.g. ``"layer4.0"``) to pooling weights of shape (N, G, h, w).
    """
    height, width = size
    blocks = list(maps)
    if not blocks:
        raise ValueError("no mode maps to draw")
    num_modes = max(m.shape[1] for m in maps.values())
    panel_w, panel_h = width + _GAP, height + _LABEL_HEIGHT + _GAP
    canvas_size = (panel_w * (num_modes + 1) + _GAP, panel_h * len(crops) * len(blocks) + _GAP)
    canvas = Image.new("RGB", canvas_size, "white")
    draw = ImageDraw.Draw(canvas)
    row = 0
    for index, crop in enumerate(crops):
        crop = crop.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        for block in blocks:
            y = _GAP + row * panel_h
            chars = max(4, int(width / 5.5))  # PIL default font: about 5.5 px per character
            title = titles[index] if titles else f"image {index}"
            canvas.paste(crop, (_GAP, y + _LABEL_HEIGHT))
            draw.text((_GAP, y), title[:chars], fill="black")
            draw.text((_GAP, y + 11), block[:chars], fill="dimgray")
            block_maps = maps[block][index]
            for mode in range(block_maps.shape[0]):
                x = _GAP + (mode + 1) * panel_w
                canvas.paste(overlay(crop, block_maps[mode]), (x, y + _LABEL_HEIGHT))
                draw.text((x, y + 11), f"mode {mode}"[:chars], fill="black")
            row += 1
    atomic_write_with(out, lambda handle: canvas.save(handle, format="PNG"))


def summarize_modes(maps: Mapping[str, np.ndarray]) -> list[dict]:
    """Where each mode looks, averaged over images: centre of mass and spread of its pooling weights.

    ``row`` / ``col`` are in [0, 1] (0 = top / left of the crop); ``spread`` is the weights'
    normalized entropy (1 = uniform over the crop, 0 = a single position). These numbers let a
    model card say "mode 3 settles on the legs" from data rather than from eyeballing.
    """
    summary = []
    for block, block_maps in maps.items():
        n, g, h, w = block_maps.shape
        weights = block_maps.reshape(n, g, h * w).astype(np.float64)
        weights = weights / np.clip(weights.sum(-1, keepdims=True), 1e-12, None)
        rows = (np.arange(h) + 0.5) / h
        cols = (np.arange(w) + 0.5) / w
        grid_r = np.repeat(rows, w)
        grid_c = np.tile(cols, h)
        entropy = -(weights * np.log(np.clip(weights, 1e-12, None))).sum(-1) / np.log(h * w)
        for mode in range(g):
            summary.append(
                {
                    "block": block,
                    "mode": mode,
                    "row": float((weights[:, mode] @ grid_r).mean()),
                    "col": float((weights[:, mode] @ grid_c).mean()),
                    "spread": float(entropy[:, mode].mean()),
                }
            )
    return summary


def compute_mode_maps(
    model: torch.nn.Module,
    crops: Sequence[Image.Image],
    *,
    input_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``crops`` and return each StRA block's pooling weights, (N, G, h, w) per block."""
    from reid_stra.data.transforms import build_eval_transform
    from reid_stra.errors import ReidError
    from reid_stra.models import capture_mode_maps, mode_blocks

    if not mode_blocks(model):
        raise ReidError(
            "this model has no StRA Mode Attention blocks; pick a stra_* model (see `reid-stra models`)"
        )
    transform = build_eval_transform(input_size, mean, std)
    batch = torch.stack([transform(crop) for crop in crops]).to(device)
    model.eval()
    from reid_stra.utils.precision import Precision

    with (
        torch.inference_mode(),
        Precision(precision, "").autocast(batch.device),
        capture_mode_maps(model) as maps,
    ):
        model(batch)
    return {name: weights.float().cpu().numpy() for name, weights in maps.by_block().items()}
