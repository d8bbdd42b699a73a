"""Draw StRA mode pooling weights as heat maps over person crops (`reid-stra explain`).

Each Mode Attention block pools its G modes with softmax weights P over the positions (spec
§3, step 1). The paper's claim is that modes settle on distinct body parts without supervision;
this picture lets a user check that on their own images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_with
from reid_stra.viz.colormap import apply_colormap

_GAP = 8
_PANEL_HEIGHT = 256  # crops drawn at 256 px high: a body part spans tens of pixels
_ROW_LABEL = 20
_HEADER = 46
_COLOUR_BAR = 44
CAPTION = (
    "Each panel shows where one StRA mode pools its context: the mode's softmax pooling weights "
    "over the block's feature map, upsampled onto the crop (scaled per panel; red = most weight)."
)


def normalize_map(weights: np.ndarray) -> np.ndarray:
    """Scale one mode's pooling weights to [0, 1] for display (per map: shapes, not magnitudes)."""
    low, high = float(weights.min()), float(weights.max())
    return np.zeros_like(weights) if high - low < 1e-12 else (weights - low) / (high - low)


def overlay(crop: Image.Image, weights: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """Blend a heat map of ``weights`` (h x w) over ``crop``, upsampled to the crop's size."""
    heat = Image.fromarray(apply_colormap(normalize_map(weights)))
    heat = heat.resize(crop.size, Image.Resampling.BILINEAR)
    return Image.blend(crop.convert("RGB"), heat, alpha)


def block_label(name: str, number: int, count: int, grid: tuple[int, int]) -> str:
    """What a row is, in words: its place among the StRA blocks, the layer, the map it sees."""
    return f"StRA block {number} of {count} (layer {name}, {grid[0]}x{grid[1]} feature map)"


def draw_crop_modes(
    crop: Image.Image, maps: Mapping[str, np.ndarray], title: str, *, aspect: tuple[int, int] = (2, 1)
) -> Image.Image:
    """One crop's figure: a row per StRA block (the crop, then one panel per mode), a title with
    the full file name, a one-line caption and a colour scale.

    ``maps`` maps a block name to this crop's pooling weights, shape (G, h, w).
    """
    if not maps:
        raise ReidError("no StRA mode maps to draw (the model has no Mode Attention block?)")
    height = _PANEL_HEIGHT
    width = max(1, round(height * aspect[1] / aspect[0]))
    num_modes = max(m.shape[0] for m in maps.values())
    panel_w = width + _GAP
    row_h = _ROW_LABEL + height + 18 + _GAP
    canvas_w = max(_GAP + panel_w * (num_modes + 1), 720)
    canvas = Image.new("RGB", (canvas_w, _HEADER + row_h * len(maps) + _COLOUR_BAR), "white")
    draw = ImageDraw.Draw(canvas)
    big, small = _font(15), _font(12)
    draw.text((_GAP, 6), title, fill="black", font=big)
    draw.text((_GAP, 26), _fit(draw, CAPTION, small, canvas_w - 2 * _GAP), fill="dimgray", font=small)
    shown = crop.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    for row, (name, block_maps) in enumerate(maps.items()):
        y = _HEADER + row * row_h
        grid = (int(block_maps.shape[1]), int(block_maps.shape[2]))
        draw.text((_GAP, y + 2), block_label(name, row + 1, len(maps), grid), fill="black", font=small)
        top = y + _ROW_LABEL
        canvas.paste(shown, (_GAP, top))
        draw.text((_GAP, top + height + 3), "crop", fill="dimgray", font=small)
        for mode in range(block_maps.shape[0]):
            x = _GAP + (mode + 1) * panel_w
            canvas.paste(overlay(shown, block_maps[mode]), (x, top))
            draw.text((x, top + height + 3), f"mode {mode + 1}", fill="black", font=small)
    _colour_bar(canvas, draw, canvas.height - _COLOUR_BAR + 8, small)
    return canvas


def save_mode_figures(
    crops: Sequence[Image.Image],
    maps: Mapping[str, np.ndarray],
    out: str | os.PathLike,
    *,
    titles: Sequence[str],
    aspect: tuple[int, int] = (2, 1),
) -> list[Path]:
    """One PNG per crop, written atomically: ``out`` itself for one crop, else ``OUT_1_name.png``...

    ``maps`` maps a block name to pooling weights of shape (N, G, h, w) for the N crops.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ReidError(f"-o {out}: the mode figures are PNG files; give a name ending in .png")
    written = []
    for index, (crop, title) in enumerate(zip(crops, titles, strict=True)):
        figure = draw_crop_modes(crop, {b: m[index] for b, m in maps.items()}, title, aspect=aspect)
        stem = Path(title).stem or f"image{index + 1}"
        path = out if len(crops) == 1 else out.with_name(f"{out.stem}_{index + 1}_{stem}.png")
        atomic_write_with(path, lambda handle, figure=figure: figure.save(handle, format="PNG"))
        written.append(path)
    return written


def _colour_bar(canvas: Image.Image, draw: ImageDraw.ImageDraw, y: int, font) -> None:
    left, width = 120, 300
    bar = apply_colormap(np.tile(np.linspace(0.0, 1.0, width), (14, 1)))
    canvas.paste(Image.fromarray(bar), (left, y))
    draw.rectangle([left - 1, y - 1, left + width, y + 14], outline="gray")
    draw.text((left - 8, y + 7), "least weight", fill="black", font=font, anchor="rm")
    draw.text((left + width + 8, y + 7), "most weight (of that mode, in that crop)", fill="black",
              font=font, anchor="lm")  # fmt: skip


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, limit: float) -> str:
    while len(text) > 10 and draw.textlength(text, font=font) > limit:
        text = text[:-2].rstrip() + "…"
    return text


def summarize_modes(maps: Mapping[str, np.ndarray]) -> list[dict]:
    """Where each mode looks, averaged over images: centre of mass and spread of its pooling weights.

    ``row`` / ``col`` are in [0, 1] (0 = top / left of the crop); ``spread`` is the weights'
    normalized entropy (1 = uniform over the crop, 0 = a single position). ``peak_motion``: how
    far (in cells) each image's peak cell lies from the peaks' mean position, averaged (0: a mode
    stuck on one cell whatever the person); ``border_mass``: the share of pooling weight on the
    map's border cells (``border_share`` of the cells: what a uniform map would put there). These
    numbers let a model card say "mode 3 follows the legs" from data rather than from eyeballing.
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
        entropy = -(weights * np.log(np.clip(weights, 1e-12, None))).sum(-1) / np.log(max(h * w, 2))
        border = np.ones((h, w), dtype=bool)
        border[1:-1, 1:-1] = False
        border = border.reshape(-1)
        peaks = weights.argmax(-1)  # (n, g) flat cell index of each image's peak
        peak_rc = np.stack([peaks // w, peaks % w], axis=-1).astype(np.float64)  # (n, g, 2)
        for mode in range(g):
            centre = peak_rc[:, mode].mean(0)
            summary.append(
                {
                    "block": block,
                    "mode": mode,
                    "row": float((weights[:, mode] @ grid_r).mean()),
                    "col": float((weights[:, mode] @ grid_c).mean()),
                    "spread": float(entropy[:, mode].mean()),
                    "peak_motion": float(np.linalg.norm(peak_rc[:, mode] - centre, axis=-1).mean()),
                    "border_mass": float(weights[:, mode][:, border].sum(-1).mean()),
                    "border_share": float(border.mean()),
                }
            )
    return summary
