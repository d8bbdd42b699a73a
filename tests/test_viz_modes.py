"""Mode heat maps: the numbers a model card quotes and the picture `explain` writes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from reid_stra.viz.colormap import apply_colormap
from reid_stra.viz.modes import draw_crop_modes, save_mode_figures, summarize_modes


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
    assert peaked["peak_motion"] == 0.0 and peaked["border_mass"] == 1.0  # stuck on a corner cell
    assert np.isclose(uniform["border_mass"], uniform["border_share"])  # a 4x2 map is all border


def test_peak_motion_and_border_mass_tell_a_moving_mode_from_a_stuck_one() -> None:
    maps = np.zeros((2, 1, 6, 4), dtype=np.float32)
    maps[0, 0, 1, 1] = 1.0  # image 1: an inner cell
    maps[1, 0, 4, 2] = 1.0  # image 2: another inner cell, 3 rows and 1 column away
    (mode,) = summarize_modes({"b": maps})
    assert np.isclose(mode["peak_motion"], np.hypot(3, 1) / 2) and mode["border_mass"] == 0.0
    assert np.isclose(mode["border_share"], 16 / 24)


def test_colormap_is_monotone_from_cold_to_hot() -> None:
    rgb = apply_colormap(np.array([0.0, 1.0]))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3)
    assert rgb[0, 2] > rgb[0, 0] and rgb[1, 0] > rgb[1, 2]  # blue first, red last


def test_one_figure_per_crop_with_a_row_per_block(tmp_path) -> None:
    crops = [Image.new("RGB", (64, 128), (200, 100, 50)), Image.new("RGB", (30, 60), (0, 0, 0))]
    maps = {"a": _peaked_maps(), "b": _peaked_maps()}
    written = save_mode_figures(
        crops, maps, tmp_path / "modes.png", titles=["0001_c1s1_000001_01.jpg", "b.png"]
    )
    assert [p.name for p in written] == ["modes_1_0001_c1s1_000001_01.png", "modes_2_b.png"]
    with Image.open(written[0]) as img:
        width, height = img.size
    assert width >= 3 * 128 and height > 2 * 256  # crop + 2 mode panels per row, 2 rows, 256 px high
    assert not list(tmp_path.glob(".*.tmp"))
    single = save_mode_figures(crops[:1], {"a": _peaked_maps()[:1]}, tmp_path / "one.png", titles=["x.jpg"])
    assert single == [tmp_path / "one.png"]


def test_figure_has_a_colour_scale_and_grows_with_blocks() -> None:
    one = draw_crop_modes(Image.new("RGB", (64, 128)), {"a": _peaked_maps()[0]}, "x.jpg")
    two = draw_crop_modes(
        Image.new("RGB", (64, 128)), {"a": _peaked_maps()[0], "b": _peaked_maps()[0]}, "x.jpg"
    )
    assert two.height > one.height and two.width == one.width
    bottom = np.asarray(one.convert("RGB"))[-40:]
    hot, cold = apply_colormap(np.array([1.0]))[0], apply_colormap(np.array([0.0]))[0]
    assert (np.all(bottom == hot, axis=-1)).any() and (np.all(bottom == cold, axis=-1)).any()
