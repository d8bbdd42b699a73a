"""`evaluate` comparing models, keeping its features, and writing the HTML report."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_stra.retrieval.features import load_features
from reid_stra.viz.cmc import _PALETTE

pytestmark = pytest.mark.slow  # its module fixture evaluates two models (the slowest setup)

MODELS = ("mobilenetv2", "stra_mobilenetv2")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> dict:
    from reid_stra.cli.app import run

    out = tmp_path_factory.mktemp("compare")
    args = [
        "evaluate", "--data", "market1501", "--root", str(synthetic_root), "--workers", "0",
        "--device", "cpu",
        "--model", MODELS[0], "--model", MODELS[1], "--save-features", str(out / "feats"),
        "--report", str(out / "report.html"), "--cmc-plot", str(out / "cmc.png"), "--json",
    ]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run(args) == 0
    return {"out": out, "summary": json.loads(stdout.getvalue())}


def test_several_models_are_compared_in_one_run(compared: dict) -> None:
    runs = compared["summary"]["runs"]
    assert [r["label"] for r in runs] == list(MODELS)
    assert all(0.0 <= r["mAP"] <= 1.0 and r["num_queries"] == 18 for r in runs)
    assert runs[0]["mAP"] != runs[1]["mAP"]  # two different models were evaluated
    with Image.open(compared["out"] / "cmc.png") as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for colour in _PALETTE[:2]:  # one curve per model
        assert np.all(pixels == np.array(colour), axis=1).sum() > 100


def test_saved_features_reproduce_the_evaluation(cli, compared: dict) -> None:
    folder = compared["out"] / "feats" / MODELS[0]
    query, meta = load_features(folder / "query.npy")
    assert query.shape[0] == 18 and meta.model == MODELS[0] and meta.images_with_ids == 18
    again = cli("evaluate", "--query-features", folder / "query.npy", "--gallery-features",
                folder / "gallery.npy", "--json")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["mAP"] == pytest.approx(compared["summary"]["runs"][0]["mAP"], abs=1e-6)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id", ""))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs and tag in ("link", "script", "a"):
                self.links.append(attrs[key])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_is_one_self_contained_page(compared: dict) -> None:
    page = _Page()
    page.feed((compared["out"] / "report.html").read_text(encoding="utf-8"))
    assert page.sections == ["summary", "cmc", "ap", "worst", "settings"]
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not page.links  # no stylesheet, script or link to fetch: it opens offline
    text = " ".join(page.text)
    assert all(model in text for model in MODELS) and "first correct rank" in text
    assert "weights_sha256" in text and f"{compared['summary']['runs'][0]['mAP']:.2%}" in text
    # one CMC plot, one AP histogram and one ranked-list picture per model
    assert len(page.images) == 1 + 2 * len(MODELS)


def _chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)  # fmt: skip


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install chromium) to render the report")
def test_report_renders_in_a_headless_browser(compared: dict, tmp_path: Path) -> None:
    page = (compared["out"] / "report.html").resolve()
    browser = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<section id="worst">' in dom.stdout and MODELS[1] in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1400,1800", page.as_uri()],
                   capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    with Image.open(shot) as image:
        colours = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert image.size == (1400, 1800)
    assert len(np.unique(colours[::97], axis=0)) > 50  # text, tables and pictures, not a blank page


def test_report_pictures_read_distances_on_searchs_scale(monkeypatch, tmp_path: Path) -> None:
    """One scale for a reader: squared Euclidean distances of normalized features (2 - 2 cos) are
    drawn as 1 - cosine similarity, what `reid-stra search` prints, and the page says so."""
    import numpy as np
    from PIL import Image

    from reid_stra.metrics.ranked_lists import RankedList
    from reid_stra.viz import report

    drawn = {}

    def capture(*args, **kwargs):
        drawn.update(kwargs)
        return Image.new("RGB", (4, 4))

    monkeypatch.setattr(report, "draw_ranklist", capture)
    run = report.ReportRun(
        label="m", summary={"mAP": 0.5, "rank1": 0.5, "rank5": 1.0, "rank10": 1.0, "mINP": 0.5,
                            "num_valid": 1, "num_invalid": 0},
        cmc=np.ones(10), ap=np.array([0.5]), worst=[RankedList(0, [0], [0.396], 1)],
        query_paths=["q.jpg"], gallery_paths=["g.jpg"], query_pids=[1], query_camids=[1], gallery_pids=[1],
    )  # fmt: skip
    out = report.write_report(
        tmp_path / "r.html", [run], title="t", settings={"metric": "euclidean", "normalize": True}
    )
    assert drawn["distances"] == [[0.198]]
    assert "1 &minus; cosine similarity" in out.read_text(encoding="utf-8")
