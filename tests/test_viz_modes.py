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


def test_explain_modes_is_the_one_pipeline_of_the_command_and_the_demo(synthetic_root, tmp_path) -> None:
    import pytest

    from reid_stra.errors import ReidError
    from reid_stra.models import build_model
    from reid_stra.viz.explain import explain_modes

    model = build_model("stra_mobilenetv2").eval()
    info = {"model": "stra_mobilenetv2", "cfg": model.pretrained_cfg.replace(input_size=(64, 32))}
    crops = sorted(str(p) for p in (synthetic_root / "query").glob("*.jpg"))[:2]
    every = explain_modes(model, info, crops, tmp_path / "all.png")
    assert len(every.figures) == 2 and all(f.is_file() for f in every.figures)
    assert len(every.maps) > 1 and {row["block"] for row in every.summary} == set(every.maps)
    last = explain_modes(model, info, crops[:1], tmp_path / "last.png", block="last")
    assert list(last.maps) == [list(every.maps)[-1]]
    assert np.allclose(last.maps[list(last.maps)[0]][0], every.maps[list(last.maps)[0]][0], atol=1e-5)
    with pytest.raises(ReidError, match="block nowhere: not a StRA block"):
        explain_modes(model, info, crops, tmp_path / "x.png", block="nowhere")
    with pytest.raises(ReidError, match="PNG files"):
        explain_modes(model, info, crops, tmp_path / "x.jpg")
