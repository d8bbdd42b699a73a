"""CMC curve PNGs (PIL-drawn): a real picture of the curve, written atomically, bad input refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.errors import ReidError
from reid_stra.viz.cmc import _CURVE, save_cmc_plot


def test_writes_png_with_the_curve(tmp_path: Path) -> None:
    cmc = np.minimum(1.0, 0.6 + 0.02 * np.arange(50))
    path = save_cmc_plot(cmc, tmp_path / "plots" / "cmc.png", "model (standard)")
    assert path == tmp_path / "plots" / "cmc.png"
    assert [p.name for p in path.parent.iterdir()] == ["cmc.png"]  # no temp file left behind
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    curve = np.all(pixels == np.array(_CURVE), axis=1).sum()
    assert curve > 200  # the line is drawn, not just the axes


def test_higher_curve_is_drawn_higher(tmp_path: Path) -> None:
    def top_of_curve(rate: float) -> int:
        path = save_cmc_plot(np.full(20, rate), tmp_path / f"{rate}.png")
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        rows = np.flatnonzero(np.all(rgb == np.array(_CURVE), axis=2).any(axis=1))
        return int(rows.min())

    assert top_of_curve(0.95) < top_of_curve(0.5)


@pytest.mark.parametrize(
    ("cmc", "name", "message"),
    [
        ([0.5, 0.7], "cmc.jpg", "ending in .png"),
        ([], "cmc.png", "matching rates"),
        ([0.5, 1.5], "cmc.png", "matching rates"),
        ([0.5, float("nan")], "cmc.png", "matching rates"),
    ],
)
def test_bad_input(tmp_path: Path, cmc: list, name: str, message: str) -> None:
    with pytest.raises(ReidError, match=message):
        save_cmc_plot(cmc, tmp_path / name)
