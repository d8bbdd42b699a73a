"""Mode heat maps: the numbers a model card quotes and the picture `explain` writes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from reid_stra.viz.colormap import apply_colormap
from reid_stra.viz.modes import draw_mode_maps, summarize_modes


def _peaked_maps() -> np.ndarray:
    """Two images, two modes on a 4x2 grid: mode 0 all on the top-left cell, mode 1 uniform."""
    maps = np.zeros((2, 2, 4, 2), dtype=np.float32)
    maps[:, 0, 0, 0] = 1.0
    maps[:, 1] = 1.0 / 8
    return maps


def test_summary_locates_a_peaked_mode_and_a_uniform_one() -> None:
    summary = summarize_modes({"layer4.0": _peaked_maps()})
    peaked, uniform = summary
    assert (peaked["block"], peaked["mode"]) == ("layer4.0", 0)
    assert np.isclose(peaked["row"], 0.125) and np.isclose(peaked["col"], 0.25)
    assert np.isclose(peaked["spread"], 0.0, atol=1e-6)
    assert np.isclose(uniform["row"], 0.5) and np.isclose(uniform["col"], 0.5)
    assert np.isclose(uniform["spread"], 1.0)


def test_colormap_is_monotone_from_cold_to_hot() -> None:
    rgb = apply_colormap(np.array([0.0, 1.0]))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3)
    assert rgb[0, 2] > rgb[0, 0] and rgb[1, 0] > rgb[1, 2]  # blue first, red last


def test_draw_writes_one_row_per_image_and_block(tmp_path) -> None:
    crops = [Image.new("RGB", (64, 128), (200, 100, 50)), Image.new("RGB", (30, 60), (0, 0, 0))]
    maps = {"a": _peaked_maps(), "b": _peaked_maps()}
    out = tmp_path / "modes.png"
    draw_mode_maps(crops, maps, out, size=(64, 32))
    with Image.open(out) as img:
        width, height = img.size
    assert width > 3 * 32 and height > 4 * 64  # 3 panels per row, 4 rows
    assert not list(tmp_path.glob(".*.tmp"))
