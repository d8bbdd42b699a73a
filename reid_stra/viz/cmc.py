"""CMC curve pictures drawn with PIL (matplotlib is not a dependency).

A CMC curve answers "how often is the right person within the top k?" for every k at once; the
PNG puts it next to the numbers `reid-stra evaluate` prints, with marked rank-1/5/10 points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_with

_SIZE = (640, 420)
_MARGIN = {"left": 64, "right": 24, "top": 40, "bottom": 52}
_CURVE = (31, 119, 180)
_GRID = (225, 225, 225)
_AXIS = (40, 40, 40)
_MARKED_RANKS = (1, 5, 10)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def save_cmc_plot(
    cmc: Sequence[float] | np.ndarray, path: str | os.PathLike, label: str = "", *, title: str = "CMC curve"
) -> Path:
    """Write the CMC curve ``cmc`` (matching rate at rank 1..len) as a PNG at ``path`` (atomically)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ReidError(f"--cmc-plot {path}: the CMC plot is a PNG; give a file name ending in .png")
    values = np.asarray(cmc, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ReidError("CMC curve: expected matching rates between 0 and 1, one per rank")
    image = draw_cmc(values, label, title)
    atomic_write_with(path, lambda handle: image.save(handle, format="PNG"))
    return path


def draw_cmc(values: np.ndarray, label: str = "", title: str = "CMC curve") -> Image.Image:
    """The picture itself: axes with ticks and grid, the curve, rank-1/5/10 marked, a legend."""
    width, height = _SIZE
    left, right = _MARGIN["left"], width - _MARGIN["right"]
    top, bottom = _MARGIN["top"], height - _MARGIN["bottom"]
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    small, normal = _font(11), _font(13)
    max_rank = len(values)
    # zoom on the interesting band (0.1 steps), with room below the lowest point for its label
    y_low = max(0.0, min(np.floor(values.min() * 10) / 10 - 0.1, 0.9))

    def x_of(rank: float) -> float:
        return left + (rank - 1) / max(max_rank - 1, 1) * (right - left)

    def y_of(rate: float) -> float:
        return bottom - (rate - y_low) / (1.0 - y_low) * (bottom - top)

    for tick in np.round(np.arange(y_low, 1.0001, 0.1), 1):  # horizontal grid + y labels
        y = y_of(tick)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((left - 8, y), f"{tick:.1f}", fill=_AXIS, font=small, anchor="rm")
    for rank in _rank_ticks(max_rank):  # vertical grid + x labels
        x = x_of(rank)
        draw.line([(x, top), (x, bottom)], fill=_GRID)
        draw.text((x, bottom + 6), str(rank), fill=_AXIS, font=small, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline=_AXIS)
    draw.text(((left + right) / 2, height - 8), "rank", fill=_AXIS, font=normal, anchor="mb")
    draw.text((8, (top + bottom) / 2), "match\nrate", fill=_AXIS, font=normal, anchor="lm")
    draw.text(((left + right) / 2, 12), title, fill=_AXIS, font=normal, anchor="mt")

    points = [(x_of(rank), y_of(rate)) for rank, rate in enumerate(values, start=1)]
    if len(points) > 1:
        draw.line(points, fill=_CURVE, width=2, joint="curve")
    for rank in _MARKED_RANKS:
        if rank <= max_rank:
            x, y = points[rank - 1]
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=_CURVE)
            draw.text((x + 5, y + 4), f"R{rank} {values[rank - 1]:.1%}", fill=_CURVE, font=small, anchor="lt")
    if label:
        draw.line([(right - 150, bottom - 18), (right - 130, bottom - 18)], fill=_CURVE, width=2)
        draw.text((right - 125, bottom - 18), label[:28], fill=_AXIS, font=small, anchor="lm")
    return image


def _rank_ticks(max_rank: int) -> list[int]:
    """1 plus round steps (5, 10, 20, ...) so labels never crowd."""
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if max_rank / s <= 10)
    return sorted({1, *range(step, max_rank + 1, step)})
