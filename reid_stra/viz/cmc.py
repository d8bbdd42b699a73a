"""CMC curve pictures drawn with PIL (matplotlib is not a dependency).

A CMC curve answers "how often is the right person within the top k?" for every k at once; the
PNG puts it next to the numbers `reid-stra evaluate` prints, with marked rank-1/5/10 points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_with

_SIZE = (720, 460)
_MARGIN = {"left": 56, "right": 24, "top": 48, "bottom": 52}
_CURVE = (31, 119, 180)
_PALETTE = (_CURVE, (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))
_GRID = (225, 225, 225)
_AXIS = (40, 40, 40)
_MARKED_RANKS = (1, 5, 10)


@dataclass(frozen=True)
class CmcCurve:
    """One model's curve: its legend name, matching rate per rank, and mAP (shown beside it)."""

    label: str
    cmc: np.ndarray
    mAP: float | None = None  # noqa: N815 - the metric's name


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def save_cmc_plot(
    cmc: Sequence[float] | np.ndarray,
    path: str | os.PathLike,
    label: str = "",
    *,
    title: str = "CMC curve",
    mAP: float | None = None,  # noqa: N803
) -> Path:
    """Write the CMC curve ``cmc`` (matching rate at rank 1..len) as a PNG at ``path`` (atomically)."""
    return save_cmc_plots([CmcCurve(label, np.asarray(cmc, dtype=np.float64), mAP)], path, title=title)


def save_cmc_plots(curves: Sequence[CmcCurve], path: str | os.PathLike, *, title: str = "CMC curve") -> Path:
    """Several models' curves on one plot (``evaluate --weights A --weights B``), as a PNG."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ReidError(f"--cmc-plot {path}: the CMC plot is a PNG; give a file name ending in .png")
    image = draw_cmc(curves, title)
    atomic_write_with(path, lambda handle: image.save(handle, format="PNG"))
    return path


def draw_cmc(curves: Sequence[CmcCurve], title: str = "CMC curve") -> Image.Image:
    """The picture itself: axes with ticks and grid, the curves with rank-1/5/10 marked, and a
    legend inside the frame giving each curve's rank-1 (and mAP) so no label crosses a curve."""
    curves = [_checked(curve) for curve in curves]
    if not curves:
        raise ReidError("CMC curve: nothing to draw")
    width, height = _SIZE
    left, right = _MARGIN["left"], width - _MARGIN["right"]
    top, bottom = _MARGIN["top"], height - _MARGIN["bottom"]
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    small, normal = _font(12), _font(14)
    max_rank = max(len(curve.cmc) for curve in curves)
    lowest = min(float(curve.cmc.min()) for curve in curves)
    # zoom on the interesting band (0.1 steps), with room below the lowest curve for the legend
    y_low = max(0.0, min(np.floor(lowest * 10) / 10 - 0.1 * (1 + len(curves) / 2), 0.9))
    y_low = float(np.floor(y_low * 10) / 10)

    def x_of(rank: float) -> float:
        return left + (rank - 1) / max(max_rank - 1, 1) * (right - left)

    def y_of(rate: float) -> float:
        return bottom - (rate - y_low) / (1.0 - y_low) * (bottom - top)

    for tick in np.round(np.arange(y_low, 1.0001, 0.1), 1):  # horizontal grid + y labels
        y = y_of(tick)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((left - 8, y), f"{tick:.0%}", fill=_AXIS, font=small, anchor="rm")
    for rank in _rank_ticks(max_rank):  # vertical grid + x labels
        x = x_of(rank)
        draw.line([(x, top), (x, bottom)], fill=_GRID)
        draw.text((x, bottom + 6), str(rank), fill=_AXIS, font=small, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline=_AXIS)
    draw.text(((left + right) / 2, height - 8), "rank", fill=_AXIS, font=normal, anchor="mb")
    draw.text((8, top - 8), "match rate", fill=_AXIS, font=small, anchor="lb")  # above the y labels
    draw.text(((left + right) / 2, 12), title, fill=_AXIS, font=normal, anchor="mt")

    entries = []
    for number, curve in enumerate(curves):
        colour = _PALETTE[number % len(_PALETTE)]
        points = [(x_of(rank), y_of(rate)) for rank, rate in enumerate(curve.cmc, start=1)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2, joint="curve")
        for rank in _MARKED_RANKS:
            if rank <= len(points):
                x, y = points[rank - 1]
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        marks = ", ".join(f"rank-{r} {curve.cmc[r - 1]:.1%}" for r in _MARKED_RANKS if r <= len(curve.cmc))
        text = (f"{curve.label}: " if curve.label else "") + marks
        entries.append((colour, text + (f", mAP {curve.mAP:.1%}" if curve.mAP is not None else "")))
    _legend(draw, entries, (right - 8, bottom - 8), small)
    return image


def _legend(draw: ImageDraw.ImageDraw, entries, corner: tuple[float, float], font) -> None:
    """Entries stacked in a white box whose bottom-right corner is ``corner`` (inside the frame)."""
    line, swatch = 18, 22
    widths = [draw.textlength(text, font=font) for _, text in entries]
    box_w, box_h = swatch + 8 + max(widths) + 12, line * len(entries) + 8
    x1, y1 = corner
    x0, y0 = x1 - box_w, y1 - box_h
    draw.rectangle([x0, y0, x1, y1], fill="white", outline=_GRID)
    for row, (colour, text) in enumerate(entries):
        y = y0 + 4 + line * row + line / 2
        draw.line([(x0 + 6, y), (x0 + 6 + swatch, y)], fill=colour, width=3)
        draw.text((x0 + 14 + swatch, y), text, fill=_AXIS, font=font, anchor="lm")


def _checked(curve: CmcCurve) -> CmcCurve:
    values = np.asarray(curve.cmc, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ReidError("CMC curve: expected matching rates between 0 and 1, one per rank")
    return CmcCurve(curve.label, values, curve.mAP)


def _rank_ticks(max_rank: int) -> list[int]:
    """1 plus round steps (5, 10, 20, ...) so labels never crowd."""
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if max_rank / s <= 10)
    return sorted({1, *range(step, max_rank + 1, step)})
