"""`evaluate --report`: one self-contained HTML page about an evaluation (no network needed).

A number says how good a model is; the page also says *where* it fails: the CMC curves, how the
per-query AP is spread, the worst queries with what the model ranked above the right person,
and the settings and weights used, side by side for several models. Pictures are embedded as
PNG data URIs, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from reid_stra._version import __version__
from reid_stra.errors import ReidError
from reid_stra.metrics.ranked_lists import RankedList, ranked_lists
from reid_stra.utils.atomic import atomic_write_text
from reid_stra.viz.cmc import CmcCurve, draw_cmc
from reid_stra.viz.ranklist import draw_ranklist

_HIST_SIZE = (420, 240)
_BAR = (31, 119, 180)
_AXIS = (40, 40, 40)
_METRICS = (("mAP", "mAP"), ("rank1", "rank-1"), ("rank5", "rank-5"), ("rank10", "rank-10"), ("mINP", "mINP"))


@dataclass
class ReportRun:
    """One evaluated model: its numbers, per-query AP, and the worst queries' ranked lists."""

    label: str
    summary: dict[str, Any]  # mAP, rank1, rank5, rank10, mINP, num_valid, num_invalid
    cmc: np.ndarray
    ap: np.ndarray  # per query; NaN where the query has no valid positive
    worst: list[RankedList]
    query_paths: Sequence[str]
    gallery_paths: Sequence[str]
    query_pids: Sequence[int]
    query_camids: Sequence[int]
    gallery_pids: Sequence[int]
    settings: dict[str, Any] = field(default_factory=dict)  # model, weights, sha256, input size...
    gallery_camids: Sequence[int] | None = None  # the camera under each tile of the ranked lists


def report_run(
    label: str,
    result: dict[str, Any],
    query: Sequence[Any],
    gallery: Sequence[Any],
    source: dict[str, Any],
    *,
    metric: str,
    normalize: bool,
    worst: int = 8,
) -> ReportRun:
    """A :class:`ReportRun` from one evaluation (``result`` as evaluate_features returns it, with
    the features kept; ``query``/``gallery`` as ``Sample`` rows): the ``worst`` queries by AP get
    their ranked lists, ranked under the same protocol and settings."""
    ap = np.asarray(result["ap"], dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(ap))
    chosen = valid[np.argsort(ap[valid], kind="stable")][:worst]
    features = result["features"]
    query_pids, query_camids = [s.pid for s in query], [s.camid for s in query]
    gallery_pids, gallery_camids = [s.pid for s in gallery], [s.camid for s in gallery]
    lists = ranked_lists(
        features["query"], features["gallery"], query_pids, query_camids, gallery_pids, gallery_camids,
        chosen.tolist(), k=10, metric=metric, normalize=normalize,
    )  # fmt: skip
    return ReportRun(
        label=label,
        summary=result,
        cmc=np.asarray(result["cmc"]),
        ap=ap,
        worst=lists,
        query_paths=[s.path for s in query],
        gallery_paths=[s.path for s in gallery],
        query_pids=query_pids,
        query_camids=query_camids,
        gallery_pids=gallery_pids,
        gallery_camids=gallery_camids,
        settings=source,
    )


def write_report(
    path: str | os.PathLike, runs: Sequence[ReportRun], *, title: str, settings: dict[str, Any]
) -> Path:
    """Write the page to ``path`` (atomically) and return it."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ReidError(f"--report {path}: the report is an HTML page; give a file name ending in .html")
    if not runs:
        raise ReidError("--report: nothing was evaluated")
    atomic_write_text(path, render_report(runs, title=title, settings=settings))
    return path


def render_report(runs: Sequence[ReportRun], *, title: str, settings: dict[str, Any]) -> str:
    """The HTML text (sections: summary, CMC, AP distribution, worst queries, settings)."""
    curves = [CmcCurve(run.label, run.cmc, float(run.summary["mAP"])) for run in runs]
    cmc_png = _png(draw_cmc(curves, f"CMC: {title}"))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>reid-stra evaluation: {_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation: {_e(title)}</h1>",
        f'<p class="meta">reid-stra {_e(__version__)}, {created}; {len(runs)} model(s)</p>',
        '<section id="summary"><h2>Summary</h2>',
        _summary_table(runs),
        "</section>",
        '<section id="cmc"><h2>CMC curve</h2>',
        "<p>How often the right person is within the first <i>k</i> matches, for every <i>k</i>.</p>",
        f'<img class="plot" alt="CMC curves" src="{cmc_png}">',
        "</section>",
        '<section id="ap"><h2>Per-query average precision</h2>',
        "<p>How the AP of single queries is spread: mass near 0 means people the model does not "
        "find at all; the mean of each histogram is the mAP.</p>",
        '<div class="row">',
        *(
            _figure(
                _png(_ap_histogram(run.ap)), f"{run.label}: AP of {int(np.isfinite(run.ap).sum())} queries"
            )
            for run in runs
        ),  # fmt: skip
        "</div></section>",
        '<section id="worst"><h2>Worst queries</h2>',
        "<p>The queries with the lowest AP and their top matches (green: same person, red: another "
        "person, dark frame: the first correct match; the title names its rank when it is further down). "
        f"The number under each match is its distance as {_distance_name(settings)}.</p>",
        '<div class="row">',
        *(_worst_queries(run, _cosine_scale(settings)) for run in runs),
        "</div></section>",
        '<section id="settings"><h2>Settings</h2>',
        _settings_table(runs, settings),
        "</section></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary_table(runs: Sequence[ReportRun]) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in _METRICS)
    rows = []
    best = {key: max(float(run.summary[key]) for run in runs) for key, _ in _METRICS}
    for run in runs:
        cells = []
        for key, _ in _METRICS:
            value = float(run.summary[key])
            mark = ' class="best"' if len(runs) > 1 and value == best[key] else ""
            cells.append(f"<td{mark}>{value:.2%}</td>")
        valid = f"{run.summary['num_valid']} valid / {run.summary['num_valid'] + run.summary['num_invalid']}"
        rows.append(f"<tr><th>{_e(run.label)}</th>{''.join(cells)}<td>{valid}</td></tr>")
    return f'<table class="summary"><tr><th>model</th>{head}<th>queries</th></tr>{"".join(rows)}</table>'


def _cosine_scale(settings: dict[str, Any]) -> bool:
    """Squared Euclidean distances of L2-normalized features are 2 - 2 cos: the pictures show
    them halved, as 1 - cosine similarity, the scale `search` prints (one scale for a reader)."""
    return settings.get("metric", "euclidean") == "euclidean" and bool(settings.get("normalize", True))


def _distance_name(settings: dict[str, Any]) -> str:
    if _cosine_scale(settings) or settings.get("metric") == "cosine":
        return "1 &minus; cosine similarity (what <code>reid-stra search</code> prints)"
    return "squared Euclidean distance (features not normalized)"


def _worst_queries(run: ReportRun, cosine_scale: bool = False) -> str:
    if not run.worst:
        return f"<div><h3>{_e(run.label)}</h3><p>no valid query</p></div>"
    picture = draw_ranklist(
        [run.query_paths[item.query] for item in run.worst],
        [[run.gallery_paths[g] for g in item.gallery] for item in run.worst],
        query_pids=[run.query_pids[item.query] for item in run.worst],
        query_camids=[run.query_camids[item.query] for item in run.worst],
        match_pids=[[run.gallery_pids[g] for g in item.gallery] for item in run.worst],
        match_camids=None
        if run.gallery_camids is None
        else [[run.gallery_camids[g] for g in item.gallery] for item in run.worst],
        distances=[[d / 2 if cosine_scale else d for d in item.distances] for item in run.worst],
        first_hits=[item.first_hit for item in run.worst],
    )
    rows = "".join(
        f"<tr><td>{_e(os.path.basename(run.query_paths[item.query]))}</td>"
        f"<td>{float(run.ap[item.query]):.3f}</td><td>{item.first_hit or '-'}</td></tr>"
        for item in run.worst
    )
    table = (
        f'<table class="small"><tr><th>query</th><th>AP</th><th>first correct rank</th></tr>{rows}</table>'
    )
    figure = _figure(_png(picture), "ranked lists of the worst queries")
    return f"<div><h3>{_e(run.label)}</h3>{table}{figure}</div>"


def _settings_table(runs: Sequence[ReportRun], settings: dict[str, Any]) -> str:
    keys = sorted({key for run in runs for key in run.settings})
    head = "".join(f"<th>{_e(run.label)}</th>" for run in runs)
    rows = [
        f"<tr><th>{_e(key)}</th>"
        + "".join(f"<td>{_e(_text(run.settings.get(key)))}</td>" for run in runs)
        + "</tr>"
        for key in keys
    ]
    shared = "".join(
        f"<tr><th>{_e(key)}</th><td>{_e(_text(value))}</td></tr>" for key, value in settings.items()
    )
    return (
        f'<table class="settings"><tr><th></th>{head}</tr>{"".join(rows)}</table>'
        f'<h3>Evaluation</h3><table class="settings">{shared}</table>'
    )


def _ap_histogram(ap: np.ndarray, bins: int = 20) -> Image.Image:
    """Bars of per-query AP in ``bins`` equal steps from 0 to 1 (PIL, like the CMC plot)."""
    values = np.asarray(ap, dtype=np.float64)
    values = values[np.isfinite(values)]
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    width, height = _HIST_SIZE
    left, right, top, bottom = 44, width - 12, 14, height - 30
    image = Image.new("RGB", _HIST_SIZE, "white")
    draw = ImageDraw.Draw(image)
    peak = max(int(counts.max()) if counts.size else 0, 1)
    step = (right - left) / bins
    for index, count in enumerate(counts):
        x0 = left + index * step
        y0 = bottom - count / peak * (bottom - top)
        draw.rectangle([x0 + 1, y0, x0 + step - 1, bottom], fill=_BAR)
    draw.rectangle([left, top, right, bottom], outline=_AXIS)
    for tick in np.linspace(0, 1, 6):
        x = left + tick * (right - left)
        draw.text((x, bottom + 4), f"{tick:.1f}", fill=_AXIS, anchor="mt")
    draw.text((left - 6, top), str(peak), fill=_AXIS, anchor="rt")
    draw.text((left - 6, bottom), "0", fill=_AXIS, anchor="rb")
    draw.text(((left + right) / 2, height - 2), "average precision of a query", fill=_AXIS, anchor="mb")
    return image


def _figure(src: str, caption: str) -> str:
    return f'<figure><img alt="{_e(caption)}" src="{src}"><figcaption>{_e(caption)}</figcaption></figure>'


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " x ".join(str(v) for v in value)
    return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1800px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #666; } table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: right; }
th:first-child { text-align: left; } td.best { font-weight: bold; background: #eef7ee; }
table.settings td, table.small td { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
figure { margin: 0; } figcaption { color: #555; font-size: .9em; } img { max-width: 100%; }
"""
