"""Cutting person crops out of a video frame the way a tracker's detector reports them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from reid_stra.errors import ReidError


def crop_boxes(frame: np.ndarray, boxes: Iterable[Sequence[float]]) -> list[np.ndarray]:
    """One crop per ``(x1, y1, x2, y2)`` box of ``frame`` (H x W x C, any channel order).

    Detectors give float boxes that may reach past the frame edge; each box is clipped to the frame
    and widened to whole pixels (floor of the top-left corner, ceiling of the bottom-right), so a
    box at ``x1=-20`` still yields its visible part instead of an empty slice. A box with no pixel
    inside the frame is an error naming it: a tracker needs one embedding per detection.
    """
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        shape = getattr(frame, "shape", None)
        raise ReidError(
            f"crop_boxes: the frame must be an H x W x C numpy array, got {shape or type(frame).__name__}"
        )
    height, width = frame.shape[:2]
    crops = []
    for index, box in enumerate(boxes):
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ReidError(
                f"crop_boxes: box {index} is {box!r}; expected four numbers x1, y1, x2, y2"
            ) from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ReidError(f"crop_boxes: box {index} {box!r} has a coordinate that is not a finite number")
        left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
        right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
        if right <= left or bottom <= top:
            raise ReidError(
                f"crop_boxes: box {index} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has no pixel inside the "
                f"{width} x {height} frame; drop the detection or check the box format (x1, y1, x2, y2)"
            )
        crops.append(frame[top:bottom, left:right])
    return crops
