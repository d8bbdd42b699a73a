"""Ranked-list pictures: border colours tell same id / other id / unknown; bad crops do not break it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.errors import ReidError
from reid_stra.viz.ranklist import (
    FIRST_CORRECT,
    OTHER_ID,
    QUERY,
    SAME_ID,
    UNKNOWN_ID,
    draw_ranklist,
    save_ranklist,
    tile_origin,
)


def _crop(path: Path, colour: tuple[int, int, int]) -> str:
    Image.new("RGB", (20, 40), colour).save(path)
    return str(path)


def test_borders_follow_ids(tmp_path: Path) -> None:
    query = _crop(tmp_path / "q.png", (0, 0, 0))
    matches = [_crop(tmp_path / f"g{i}.png", (255, 255, 0)) for i in range(3)]
    out = tmp_path / "ranks.png"
    save_ranklist(
        [query, query],
        [matches, [matches[0], str(tmp_path / "missing.jpg"), matches[2]]],
        out,
        query_pids=[7, None],
        match_pids=[[8, 7, None], [7, 8, 9]],
        distances=[[0.1, 0.2, 0.3], [0.1, 0.3, 0.4]],
        size=(40, 20),
    )
    image = Image.open(out).convert("RGB")

    def border(row: int, col: int) -> tuple[int, int, int]:
        x, y = tile_origin(row, col, (40, 20))
        return image.getpixel((x + 1, y + 1))

    assert border(0, -1) == QUERY
    assert (border(0, 0), border(0, 1), border(0, 2)) == (OTHER_ID, SAME_ID, UNKNOWN_ID)  # partial ids
    x, y = tile_origin(0, 1, (40, 20))
    assert image.getpixel((x - 2, y - 2)) == FIRST_CORRECT  # rank 2 is the first correct match
    x, y = tile_origin(0, 0, (40, 20))
    assert image.getpixel((x - 2, y - 2)) == (255, 255, 255)  # a wrong match has no frame
    assert border(1, 0) == UNKNOWN_ID  # query id unknown
    # The unreadable crop is a grey placeholder, not a failure.
    x, y = tile_origin(1, 1, (40, 20))
    assert image.getpixel((x + 10, y + 10)) == (200, 200, 200)


def test_row_titles_and_labels_name_the_query_and_matches(tmp_path: Path) -> None:
    """A title per row (file, id, camera, first correct rank) and, per match, rank, distance, id:
    the text bands above the row and under the match change with them, the crops do not."""
    query = _crop(tmp_path / "q.png", (0, 0, 0))
    size = (40, 20)
    plain = np.asarray(draw_ranklist([query], [[query]], size=size).convert("L"))
    titled = np.asarray(draw_ranklist([query], [[query]], query_pids=[3], query_camids=[2], match_pids=[[3]],
                                      distances=[[0.25]], size=size).convert("L"))  # fmt: skip
    x, y = tile_origin(0, 0, size)
    title_band = slice(y - 18, y - 4)  # the row title above the tiles (not the first-correct frame)
    label_band = slice(y + size[0] + 12, y + size[0] + 8 + 28)  # the two lines under the match
    crop = (slice(y + 4, y + 4 + size[0]), slice(x + 4, x + 4 + size[1]))
    assert (
        plain[title_band] != titled[title_band]
    ).sum() > 20  # "id 3, camera 2 | first correct match: rank 1"
    assert (plain[label_band, x : x + 40] != titled[label_band, x : x + 40]).sum() > 10  # distance and id
    assert np.array_equal(plain[crop], titled[crop])


def test_bad_arguments(tmp_path: Path) -> None:
    query = _crop(tmp_path / "q.png", (0, 0, 0))
    with pytest.raises(ReidError, match=r"\.png"):
        save_ranklist([query], [[query]], tmp_path / "ranks.jpg")
    with pytest.raises(ReidError, match="one list of matches per query"):
        save_ranklist([query, query], [[query]], tmp_path / "ranks.png")


def test_a_long_ranked_list_draws_at_most_max_tiles_per_row(tmp_path: Path) -> None:
    """`search --show --top-k 500` gives a readable picture (issue 28: a 131,698-px-wide PNG before):
    the width stops growing at MAX_TILES matches and the row title says how many are drawn."""
    from reid_stra.viz.ranklist import MAX_TILES

    query = _crop(tmp_path / "q.png", (0, 0, 0))
    size = (40, 20)
    widths = {n: draw_ranklist([query], [[query] * n], size=size).size[0] for n in (MAX_TILES, 60, 500)}
    assert widths[60] == widths[500] == widths[MAX_TILES]
    full = np.asarray(draw_ranklist([query], [[query] * MAX_TILES], size=size).convert("L"))
    capped = np.asarray(draw_ranklist([query], [[query] * 60], size=size).convert("L"))
    x, y = tile_origin(0, 0, size)
    title_band = slice(y - 18, y - 4)
    assert (full[title_band] != capped[title_band]).sum() > 20  # "first 20 of 60 matches drawn"


def test_same_camera_matches_are_marked_and_skipped_for_the_first_correct_match(tmp_path: Path) -> None:
    """The protocol ignores the query's id seen by the query's own camera: the picture says so (an
    amber border, the camera under each tile) and frames the first match the protocol counts."""
    from reid_stra.viz.ranklist import SAME_CAMERA

    query = _crop(tmp_path / "q.png", (0, 0, 0))
    matches = [_crop(tmp_path / f"g{i}.png", (255, 255, 0)) for i in range(3)]
    size = (40, 20)
    kwargs = dict(query_pids=[7], query_camids=[1], match_pids=[[7, 8, 7]], size=size)
    image = draw_ranklist([query], [matches], match_camids=[[1, 2, 3]], **kwargs)
    without_cameras = draw_ranklist([query], [matches], **kwargs)

    def pixel(picture, col: int, dx: int, dy: int) -> tuple[int, int, int]:
        x, y = tile_origin(0, col, size)
        return picture.getpixel((x + dx, y + dy))

    assert (pixel(image, 0, 1, 1), pixel(image, 1, 1, 1), pixel(image, 2, 1, 1)) == (
        SAME_CAMERA,
        OTHER_ID,
        SAME_ID,
    )
    assert pixel(image, 2, -2, -2) == FIRST_CORRECT and pixel(image, 0, -2, -2) == (255, 255, 255)
    assert pixel(without_cameras, 0, 1, 1) == SAME_ID and pixel(without_cameras, 0, -2, -2) == FIRST_CORRECT
    x, y = tile_origin(0, 1, size)
    label = (slice(y + size[0] + 8, y + size[0] + 8 + 28), slice(x, x + 40))
    grey = (np.asarray(image.convert("L"))[label], np.asarray(without_cameras.convert("L"))[label])
    assert (grey[0] != grey[1]).sum() > 10  # "cam 2" under the tile
