"""Ranked-list pictures: border colours tell same id / other id / unknown; bad crops do not break it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reid_stra.errors import ReidError
from reid_stra.viz.ranklist import OTHER_ID, QUERY, SAME_ID, UNKNOWN_ID, save_ranklist


def _crop(path: Path, colour: tuple[int, int, int]) -> str:
    Image.new("RGB", (20, 40), colour).save(path)
    return str(path)


def test_borders_follow_ids(tmp_path: Path) -> None:
    query = _crop(tmp_path / "q.png", (0, 0, 0))
    matches = [_crop(tmp_path / f"g{i}.png", (255, 255, 0)) for i in range(2)]
    out = tmp_path / "ranks.png"
    save_ranklist(
        [query, query],
        [matches, [matches[0], str(tmp_path / "missing.jpg")]],
        out,
        query_pids=[7, None],
        match_pids=[[7, 8], [7, 8]],
        distances=[[0.1, 0.2], [0.1, 0.3]],
        size=(40, 20),
    )
    image = Image.open(out).convert("RGB")
    tile_w, tile_h, gap, query_gap = 20 + 8, 40 + 8 + 14, 6, 18
    first_match_x = gap + tile_w + query_gap
    row1, row2 = gap + 1, gap + tile_h + gap + 1
    assert image.getpixel((gap + 1, row1)) == QUERY
    assert image.getpixel((first_match_x + 1, row1)) == SAME_ID
    assert image.getpixel((first_match_x + tile_w + gap + 1, row1)) == OTHER_ID
    assert image.getpixel((first_match_x + 1, row2)) == UNKNOWN_ID  # query id unknown
    # The unreadable crop is a grey placeholder, not a failure.
    assert image.getpixel((first_match_x + tile_w + gap + 10, row2 + 10)) == (200, 200, 200)


def test_bad_arguments(tmp_path: Path) -> None:
    query = _crop(tmp_path / "q.png", (0, 0, 0))
    with pytest.raises(ReidError, match=r"\.png"):
        save_ranklist([query], [[query]], tmp_path / "ranks.jpg")
    with pytest.raises(ReidError, match="one list of matches per query"):
        save_ranklist([query, query], [[query]], tmp_path / "ranks.png")
