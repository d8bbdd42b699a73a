"""A perceptual colormap without matplotlib, for heat maps."""

from __future__ import annotations

import numpy as np

# Anchor colours of the "turbo"-like ramp: dark blue -> cyan -> green -> yellow -> red.
_ANCHORS = np.array(
    [
        [48, 18, 59],
        [65, 105, 225],
        [30, 190, 220],
        [60, 220, 110],
        [200, 230, 40],
        [250, 150, 30],
        [200, 30, 20],
    ],
    dtype=np.float32,
)


def apply_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to uint8 RGB (shape + (3,))."""
    v = np.clip(np.nan_to_num(values.astype(np.float32)), 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(v).astype(int)
    high = np.minimum(low + 1, len(_ANCHORS) - 1)
    frac = (v - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[high] * frac
    return rgb.round().astype(np.uint8)
