"""The weights shipped in weights/: they load by default, embed, and tell people apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reid_stra.data.datasets import load_dataset
from reid_stra.models import default_model_name, load_model, shipped_weights

pytestmark = pytest.mark.skipif(shipped_weights("stra_mobilenetv2") is None, reason="no shipped weights")


def test_default_model_is_the_most_accurate_shipped_model() -> None:
    """The card's choice: the baseline trained with torchreid's recipe beats the shipped StRA model."""
    assert default_model_name() == "mobilenetv2"
    model, info = load_model(device="cpu")
    assert info["model"] == "mobilenetv2"
    assert info["weights"].endswith("mobilenetv2_market1501mini.pth")
    assert info["cfg"].input_size == (256, 128)  # the 128x64 model fine-tuned at 256x128
    assert not model.training
    stra, stra_info = load_model("stra_mobilenetv2", device="cpu")  # shipped beside it
    assert stra_info["weights"].endswith("stra_mobilenetv2_market1501mini.pth")


def test_shipped_model_ranks_same_person_above_different_person(synthetic_root) -> None:
    """Same-id pairs of the synthetic cartoon figures are closer than different-id pairs (a sanity
    check that runs without ../shared; how well it finds real people is the next test)."""
    from reid_stra.retrieval.extract import extract_features

    model, info = load_model(device="cpu")
    query = load_dataset("market1501", synthetic_root).query
    feats = extract_features(
        model, [s.path for s in query], batch_size=32, workers=0, device="cpu",
        input_size=info["cfg"].input_size, mean=info["cfg"].mean, std=info["cfg"].std, normalize=True,
    )  # fmt: skip
    pids = np.array([s.pid for s in query])
    dist = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    same = pids[:, None] == pids[None]
    off_diagonal = ~np.eye(len(pids), dtype=bool)
    assert dist[same & off_diagonal].mean() < dist[~same].mean()


@pytest.mark.slow
def test_shipped_model_finds_real_people_across_cameras(shared_dir) -> None:
    """On real crops (a slice of the shared split: 40 queries, their people's gallery images and
    200 others), the nearest gallery image from another camera is mostly the same person."""
    from reid_stra.metrics.evaluation import evaluate_features
    from reid_stra.retrieval.extract import extract_features

    dataset = load_dataset("market1501", shared_dir / "data" / "Market-1501-mini")
    query = dataset.query[::13][:40]
    wanted = {s.pid for s in query}
    gallery = [s for s in dataset.gallery if s.pid in wanted] + [
        s for s in dataset.gallery if s.pid not in wanted
    ][:200]
    model, info = load_model(device="cpu")

    def embed(samples):
        cfg = info["cfg"]
        options = {"input_size": cfg.input_size, "mean": cfg.mean, "std": cfg.std}
        return extract_features(model, [s.path for s in samples], batch_size=32, workers=0, **options)

    def ids(samples):
        return [s.pid for s in samples], [s.camid for s in samples]

    (q_pids, q_camids), (g_pids, g_camids) = ids(query), ids(gallery)
    result = evaluate_features(
        embed(query), embed(gallery), q_pids, g_pids, q_camids, g_camids, progress=False
    )
    assert result["rank1"] >= 0.8 and result["mAP"] >= 0.6, result["mAP"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("domain", "folder"), [("in_domain", "Market-1501-mini"), ("cross_domain", "CUHK03-detected")]
)
@pytest.mark.slow
def test_shipped_default_reproduces_its_card_in_both_domains(shared_dir, domain: str, folder: str) -> None:
    """The numbers packed with the default (and written in weights/README.md, shown by `reid-stra
    models`): Market-1501-mini's test split (people never trained on) and CUHK03-detected's
    (cameras never seen)."""
    from reid_stra.models.catalog import shipped_accuracy
    from reid_stra.retrieval.evaluation import evaluate_model

    root = shared_dir / "data" / folder
    if not root.is_dir():
        pytest.skip(f"{root} is not present")
    card = shipped_accuracy(default_model_name())[domain]
    assert folder in card["data"]
    dataset = load_dataset("market1501", root)  # CUHK03-detected comes in Market's layout
    model, _ = load_model(device="cpu")
    result = evaluate_model(model, dataset.query, dataset.gallery, workers=0, progress=False)
    assert abs(result["mAP"] - card["mAP"]) < 0.002 and abs(result["cmc"][0] - card["rank1"]) < 0.002, result[
        "mAP"
    ]


def test_explain_draws_the_shipped_model_modes(cli, synthetic_root, tmp_path) -> None:
    out = tmp_path / "modes.png"
    result = cli(
        "explain", synthetic_root / "query", "-o", out, "--max-images", "2", "--device", "cpu", "--json"
    )  # no --model: the shipped StRA model, although the default model has no StRA
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    figures = [
        tmp_path / f"modes_{n}_{p.stem}.png"
        for n, p in enumerate(sorted((synthetic_root / "query").glob("*.jpg"))[:2], 1)
    ]
    assert report["figures"] == [str(f) for f in figures] and all(f.stat().st_size > 0 for f in figures)
    assert all("peak_motion" in m and "border_mass" in m for m in report["modes"])
    blocks = {m["block"] for m in report["modes"]}
    assert blocks == {"features.14", "features.15", "features.16", "features.17"}
    assert all(0.0 <= m["row"] <= 1.0 and 0.0 <= m["spread"] <= 1.0 for m in report["modes"])


def test_explain_refuses_a_model_without_stra(cli, synthetic_root, tmp_path) -> None:
    result = cli("explain", synthetic_root / "query", "-o", tmp_path / "m.png", "--model", "mobilenetv2")
    assert result.exit_code == 2
    assert "no StRA" in result.stderr
    assert not (tmp_path / "m.png").exists()


def test_explain_names_why_an_exported_model_cannot_be_drawn(cli, synthetic_root, tmp_path) -> None:
    exported = tmp_path / "reid.onnx"
    exported.write_bytes(b"not read: the suffix is enough")
    result = cli("explain", synthetic_root / "query", "-o", tmp_path / "m.png", "--weights", exported)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --weights {exported}: explain reads the StRA layers' pooling maps from the PyTorch model; "
        "pass the .pth weights the export was made from"
    ]


def test_models_lists_the_shipped_cards_in_both_domains(cli) -> None:
    result = cli("models", "--no-flops", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    card = rows["mobilenetv2"]["accuracy"]
    assert set(card) == {"in_domain", "cross_domain"} and "CUHK03" in card["cross_domain"]["data"]
    assert rows["resnet50"]["accuracy"] is None  # nothing shipped, nothing claimed
    table = cli("models", "--no-flops", "--model", "mobilenetv2")
    assert table.exit_code == 0 and "cross-domain" in table.stdout
    assert f"{card['cross_domain']['mAP']:.3f} / {card['cross_domain']['rank1']:.3f}" in table.stdout
