"""Ranked-list pictures (`reid-stra search --show`): each query followed by its top-k matches.

The fastest way for a person to judge a re-ID model is to look at what it retrieves: a green
border marks a match with the query's id, red another id, grey an unknown id. The distance is
written under each crop. A crop that cannot be read is drawn as a grey placeholder rather than
failing the whole picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, ImageDraw

from reid_stra.data.images import read_image
from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_with

SAME_ID = (30, 170, 60)
OTHER_ID = (215, 40, 40)
UNKNOWN_ID = (150, 150, 150)
QUERY = (40, 90, 200)
_BORDER = 4
_GAP = 6  # between crops
_QUERY_GAP = 18  # between the query and its matches
_LABEL_HEIGHT = 14
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)


def save_search_ranklist(results: Sequence, out_png: str | os.PathLike) -> None:
    """:func:`save_ranklist` for :class:`~reid_stra.retrieval.search.SearchResult` rows (``search``, demo)."""
    save_ranklist(
        [r.query for r in results],
        [[m.path for m in r.matches] for r in results],
        out_png,
        query_pids=[r.pid for r in results],
        match_pids=[[m.pid for m in r.matches] for r in results],
        distances=[[m.distance for m in r.matches] for r in results],
    )


def save_ranklist(
    query_paths: Sequence[str],
    gallery_paths_per_query: Sequence[Sequence[str]],
    out_png: str | os.PathLike,
    *,
    query_pids: Sequence[int | None] | None = None,
    match_pids: Sequence[Sequence[int | None]] | None = None,
    distances: Sequence[Sequence[float]] | None = None,
    size: tuple[int, int] = (128, 64),
    top_k: int | None = None,
) -> None:
    """Draw one row per query (query crop, then its top-k matches) into ``out_png`` atomically.

    ``size`` is each crop's (height, width); ``top_k`` limits the matches drawn per row.
    """
    if len(gallery_paths_per_query) != len(query_paths) or not query_paths:
        raise ReidError("ranked list: need one list of matches per query (and at least one query)")
    if str(out_png).lower().endswith(".png") is False:
        raise ReidError(f"--show {out_png}: the picture is written as PNG; use a name ending in .png")
    height, width = int(size[0]), int(size[1])
    shown = max(len(m) for m in gallery_paths_per_query) if top_k is None else int(top_k)
    tile_w, tile_h = width + 2 * _BORDER, height + 2 * _BORDER + _LABEL_HEIGHT
    canvas_w = _GAP + tile_w + _QUERY_GAP + shown * (tile_w + _GAP)
    canvas = Image.new("RGB", (canvas_w, _GAP + len(query_paths) * (tile_h + _GAP)), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for row, query in enumerate(query_paths):
        top = _GAP + row * (tile_h + _GAP)
        query_pid = None if query_pids is None else query_pids[row]
        _tile(canvas, draw, query, (_GAP, top), (width, height), QUERY, "query")
        left = _GAP + tile_w + _QUERY_GAP
        for col, path in enumerate(list(gallery_paths_per_query[row])[:shown]):
            pid = None if match_pids is None else match_pids[row][col]
            colour = (
                UNKNOWN_ID if query_pid is None or pid is None else SAME_ID if pid == query_pid else OTHER_ID
            )
            label = f"{col + 1}: {distances[row][col]:.3f}" if distances is not None else f"{col + 1}"
            _tile(canvas, draw, path, (left + col * (tile_w + _GAP), top), (width, height), colour, label)
    atomic_write_with(out_png, lambda handle: canvas.save(handle, format="PNG"))


def _tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    path: str,
    origin: tuple[int, int],
    size: tuple[int, int],
    colour: tuple[int, int, int],
    label: str,
) -> None:
    width, height = size
    x, y = origin
    draw.rectangle([x, y, x + width + 2 * _BORDER - 1, y + height + 2 * _BORDER - 1], fill=colour)
    canvas.paste(_crop(path, width, height), (x + _BORDER, y + _BORDER))
    draw.text((x + 1, y + height + 2 * _BORDER + 1), label, fill=_TEXT)


def _crop(path: str, width: int, height: int) -> Image.Image:
    try:
        return read_image(path).resize((width, height), Image.Resampling.BILINEAR)
    except ReidError:
        placeholder = Image.new("RGB", (width, height), (200, 200, 200))
        ImageDraw.Draw(placeholder).text((width // 2 - 3, height // 2 - 6), "?", fill=(90, 90, 90))
        return placeholder
