"""Ranked-list pictures (`reid-stra search --show`): each query followed by its top-k matches.

The fastest way for a person to judge a re-ID model is to look at what it retrieves: a green
border marks a match with the query's id, red another id, grey an unknown id, amber the query's
id seen by the query's own camera (the evaluation protocol ignores those, so the "first correct
match" skips them too). Rank, distance, id and camera are written under each crop. A crop that
cannot be read is drawn as a grey placeholder rather than failing the whole picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from reid_stra.data.images import read_image
from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_with

SAME_ID = (30, 170, 60)
OTHER_ID = (215, 40, 40)
UNKNOWN_ID = (150, 150, 150)
SAME_CAMERA = (235, 160, 20)  # the query's id from the query's camera: ignored by the protocol
QUERY = (40, 90, 200)
FIRST_CORRECT = (10, 90, 30)  # the extra frame around a row's first correct match
MAX_TILES = 20  # matches drawn per row at most, whatever the table shows (a readable picture)
_BORDER = 4
_RING = 3  # width of the first-correct frame, drawn in the gap around the tile
_GAP = 8  # between crops
_QUERY_GAP = 18  # between the query and its matches
_LABEL_HEIGHT = 28  # two text lines under each crop
_ROW_TITLE = 18  # the query's name, id and camera above each row
_LEGEND = 26
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_LEGEND_ITEMS = (
    (QUERY, "query"),
    (SAME_ID, "same id (correct)"),
    (OTHER_ID, "other id (wrong)"),
    (UNKNOWN_ID, "id unknown"),
    (SAME_CAMERA, "same id, same camera (ignored)"),
    (FIRST_CORRECT, "first correct match"),
)


def save_search_ranklist(results: Sequence, out_png: str | os.PathLike) -> None:
    """:func:`save_ranklist` for :class:`~reid_stra.retrieval.search.QueryResult` rows (``search``, demo)."""
    save_ranklist(
        [r.query for r in results],
        [[m.path for m in r.matches] for r in results],
        out_png,
        query_pids=[r.pid for r in results],
        query_camids=[r.camid for r in results],
        match_pids=[[m.pid for m in r.matches] for r in results],
        match_camids=[[m.camid for m in r.matches] for r in results],
        distances=[[m.distance for m in r.matches] for r in results],
    )


def save_ranklist(
    query_paths: Sequence[str],
    gallery_paths_per_query: Sequence[Sequence[str]],
    out_png: str | os.PathLike,
    **options: Any,
) -> None:
    """:func:`draw_ranklist` written to ``out_png`` atomically (PNG)."""
    if str(out_png).lower().endswith(".png") is False:
        raise ReidError(f"--show {out_png}: the picture is written as PNG; use a name ending in .png")
    canvas = draw_ranklist(query_paths, gallery_paths_per_query, **options)
    atomic_write_with(out_png, lambda handle: canvas.save(handle, format="PNG"))


def draw_ranklist(
    query_paths: Sequence[str],
    gallery_paths_per_query: Sequence[Sequence[str]],
    *,
    query_pids: Sequence[int | None] | None = None,
    query_camids: Sequence[int | None] | None = None,
    match_pids: Sequence[Sequence[int | None]] | None = None,
    match_camids: Sequence[Sequence[int | None]] | None = None,
    distances: Sequence[Sequence[float]] | None = None,
    first_hits: Sequence[int | None] | None = None,
    size: tuple[int, int] = (128, 64),
    top_k: int | None = None,
) -> Image.Image:
    """One row per query: a title (file, id, camera), the query crop, then its top-k matches,
    each with its rank, distance, id and camera (the file name where the id is unknown), under a
    legend of the border colours.

    ``size`` is each crop's (height, width); ``top_k`` limits the matches drawn per row (never more
    than ``MAX_TILES``: the row title says how many of how many are drawn);
    ``first_hits`` gives each row's 1-based rank of the first correct match (found from the
    ids when not given), framed in the picture and named in the row title.
    """
    if len(gallery_paths_per_query) != len(query_paths) or not query_paths:
        raise ReidError("ranked list: need one list of matches per query (and at least one query)")
    height, width = int(size[0]), int(size[1])
    matches = max(len(m) for m in gallery_paths_per_query) if top_k is None else int(top_k)
    shown = min(matches, MAX_TILES)
    tile_w = width + 2 * _BORDER
    canvas_w = max(_GAP + tile_w + _QUERY_GAP + shown * (tile_w + _GAP), 560)
    rows_h = len(query_paths) * _row_height(height)
    canvas = Image.new("RGB", (canvas_w, _LEGEND + rows_h + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    _draw_legend(draw, font)
    for row, query in enumerate(query_paths):
        query_pid = _item(query_pids, row)
        query_camid = _item(query_camids, row)
        pids = [_item(match_pids[row], col) if match_pids is not None else None for col in range(shown)]
        camids = [_item(match_camids[row], col) if match_camids is not None else None for col in range(shown)]
        ignored = [
            query_pid is not None and pid == query_pid and camid is not None and camid == query_camid
            for pid, camid in zip(pids, camids, strict=True)
        ]
        first = (
            _item(first_hits, row)
            if first_hits is not None
            else _first_correct(
                query_pid, [None if skip else pid for pid, skip in zip(pids, ignored, strict=True)]
            )
        )
        x, y = tile_origin(row, -1, size)
        title = _row_title(query, query_pid, query_camid, first)
        listed = min(matches, len(gallery_paths_per_query[row]))
        if listed > shown:
            title += f"  |  first {shown} of {listed} matches drawn"
        draw.text((x, y - _ROW_TITLE + 2), title, fill=_TEXT, font=font)
        _tile(canvas, draw, query, (x, y), (width, height), QUERY, ("query", ""), font)
        for col, path in enumerate(list(gallery_paths_per_query[row])[:shown]):
            pid = pids[col]
            colour = (
                SAME_CAMERA
                if ignored[col]
                else UNKNOWN_ID
                if query_pid is None or pid is None
                else SAME_ID
                if pid == query_pid
                else OTHER_ID
            )
            rank_text = f"#{col + 1}" + (f"  {distances[row][col]:.3f}" if distances is not None else "")
            name = f"id {pid}" if pid is not None else os.path.basename(path)
            if camids[col] is not None:
                name += f" cam {camids[col]}"
            origin = tile_origin(row, col, size)
            if first == col + 1:
                x0, y0 = origin
                x1, y1 = x0 + tile_w - 1 + _RING, y0 + height + 2 * _BORDER - 1 + _RING
                draw.rectangle([x0 - _RING, y0 - _RING, x1, y1], fill=FIRST_CORRECT)
            _tile(canvas, draw, path, origin, (width, height), colour, (rank_text, name), font)
    return canvas


def tile_origin(row: int, col: int, size: tuple[int, int] = (128, 64)) -> tuple[int, int]:
    """Top-left corner of a tile's border (``col`` -1: the query), e.g. for tests of the layout."""
    height, width = int(size[0]), int(size[1])
    tile_w = width + 2 * _BORDER
    y = _LEGEND + row * _row_height(height) + _ROW_TITLE
    x = _GAP if col < 0 else _GAP + tile_w + _QUERY_GAP + col * (tile_w + _GAP)
    return x, y


def _row_height(height: int) -> int:
    return _ROW_TITLE + height + 2 * _BORDER + _LABEL_HEIGHT + _GAP


def _row_title(query: str, pid: int | None, camid: int | None, first: int | None) -> str:
    parts = [f"query {os.path.basename(query)}"]
    if pid is not None:
        parts.append(f"id {pid}" + (f", camera {camid}" if camid is not None else ""))
        parts.append(f"first correct match: rank {first}" if first else "no correct match shown")
    return "  |  ".join(parts)


def _first_correct(query_pid: int | None, pids: Sequence[int | None]) -> int | None:
    if query_pid is None:
        return None
    return next(
        (rank for rank, pid in enumerate(pids, start=1) if pid is not None and pid == query_pid), None
    )


def _item(values: Sequence[Any] | None, index: int) -> Any:
    return None if values is None or index >= len(values) else values[index]


def _draw_legend(draw: ImageDraw.ImageDraw, font: Any) -> None:
    x = _GAP
    for colour, text in _LEGEND_ITEMS:
        draw.rectangle([x, 8, x + 12, 20], fill=colour)
        draw.text((x + 16, 14), text, fill=_TEXT, font=font, anchor="lm")
        x += 16 + int(draw.textlength(text, font=font)) + 14


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    path: str,
    origin: tuple[int, int],
    size: tuple[int, int],
    colour: tuple[int, int, int],
    label: tuple[str, str],
    font: Any,
) -> None:
    width, height = size
    x, y = origin
    draw.rectangle([x, y, x + width + 2 * _BORDER - 1, y + height + 2 * _BORDER - 1], fill=colour)
    canvas.paste(_crop(path, width, height), (x + _BORDER, y + _BORDER))
    limit = width + 2 * _BORDER + _GAP - 2
    for line, text in enumerate(label):
        draw.text(
            (x + 1, y + height + 2 * _BORDER + 2 + 13 * line),
            _fit(draw, text, font, limit),
            fill=_TEXT,
            font=font,
        )


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, limit: float) -> str:
    """``text`` shortened with a middle ellipsis to ``limit`` pixels (file names keep their end)."""
    if draw.textlength(text, font=font) <= limit:
        return text
    keep = len(text)
    while keep > 4 and draw.textlength(text[: keep // 2] + "…" + text[-(keep // 2) :], font=font) > limit:
        keep -= 1
    return text[: keep // 2] + "…" + text[-(keep // 2) :]


def _crop(path: str, width: int, height: int) -> Image.Image:
    try:
        return read_image(path).resize((width, height), Image.Resampling.BILINEAR)
    except ReidError:
        placeholder = Image.new("RGB", (width, height), (200, 200, 200))
        ImageDraw.Draw(placeholder).text((width // 2 - 3, height // 2 - 6), "?", fill=(90, 90, 90))
        return placeholder
