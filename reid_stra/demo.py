"""The built-in end-to-end demo (`reid-stra demo`, the README's first command).

It runs every stage a user meets, on synthetic data made on the spot (nothing downloaded):
train a small StRA model for a short while, evaluate it, embed the gallery with the shipped
model, search one query, and draw the ranked list and the StRA mode maps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from reid_stra.data.datasets import load_dataset
from reid_stra.data.synthetic import make_synthetic_dataset
from reid_stra.engine.trainer import plan_run, train
from reid_stra.models import build_model, load_model, shipped_weights
from reid_stra.models.weights import read_checkpoint
from reid_stra.retrieval.evaluation import evaluate_model
from reid_stra.retrieval.extract_file import extract_to_file
from reid_stra.retrieval.features import load_meta
from reid_stra.retrieval.search import extract_query_features, search_gallery
from reid_stra.utils.notice import Notice
from reid_stra.viz.cmc import save_cmc_plot
from reid_stra.viz.explain import explain_modes
from reid_stra.viz.ranklist import save_search_ranklist

DEMO_MODEL = "stra_mobilenetv2"


def run_demo(
    out: str | os.PathLike,
    *,
    epochs: int = 3,
    device: str = "auto",
    workers: int = 2,
    dataset_options: dict[str, Any] | None = None,
    notice: Notice = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole pipeline into ``out``; returns the metrics and where every output went.

    ``dataset_options`` go to :func:`make_synthetic_dataset` (tests use a smaller dataset);
    ``progress`` shows bars for data making and training (the short steps stay quiet).
    """

    out = Path(out)
    started = time.time()
    data_root = make_synthetic_dataset(
        out / "data", **{"seed": 0, **(dataset_options or {})}, progress=progress
    )
    dataset = load_dataset("market1501", data_root)
    notice(
        f"[1/5] synthetic dataset in {data_root}: {len(dataset.train)} train, "
        f"{len(dataset.query)} query, {len(dataset.gallery)} gallery images"
    )

    shipped = shipped_weights(DEMO_MODEL)
    init: dict[str, Any] = {"pretrained": "none"}
    if shipped:
        # Fine-tune the shipped model as it is: its head (neck) decides the architecture, not the recipe.
        neck = read_checkpoint(shipped).get("model_kwargs", {}).get("neck", "none")
        init.update(weights=str(shipped), neck=neck)
    overrides = {
        "data": "market1501",
        "root": str(data_root),
        "model": DEMO_MODEL,
        "height": 128,
        "width": 64,
        "epochs": epochs,
        "batch_size": 32,
        "num_instances": 4,
        "lr": 3.5e-4,
        "scheduler": "cosine",
        "warmup_epochs": 0,
        "eval_every": epochs,
        "workers": workers,
        "device": device,
        "seed": 0,
        **init,
    }
    plan = plan_run(out / "run", recipe="strong", overrides=overrides, overwrite=True)
    if shipped:
        untrained, _ = load_model(None, shipped, device=device)
    else:
        untrained = build_model(DEMO_MODEL, pretrained=None).eval()
    before = evaluate_model(
        untrained,
        dataset.query,
        dataset.gallery,
        device=device,
        workers=0,
        input_size=(128, 64),
        progress=False,
    )
    source = f"the shipped weights {shipped.name}" if shipped else "random initialization"
    notice(f"[2/5] training {DEMO_MODEL} from {source} for {epochs} epochs (mAP before: {before['mAP']:.3f})")
    summary = train(plan, notice=lambda message: notice(f"      {message}"), progress=progress)

    trained, trained_info = load_model(None, summary["model_final"], device=device)
    after = evaluate_model(trained, dataset.query, dataset.gallery, device=device, workers=0, progress=False)
    cmc_png = save_cmc_plot(after["cmc"], out / "cmc.png", label=f"{DEMO_MODEL} (demo)")
    notice(
        f"[3/5] evaluated: mAP {before['mAP']:.3f} -> {after['mAP']:.3f}, "
        f"rank-1 {before['rank1']:.3f} -> {after['rank1']:.3f}"
    )

    searcher_weights = str(shipped) if shipped else summary["model_final"]
    gallery_file, ranklist_png, top = _extract_and_search(dataset, searcher_weights, out, device, workers)
    notice(
        f"[4/5] gallery embedded with {Path(searcher_weights).name}; query {Path(top.query).name}: "
        f"top match {Path(top.matches[0].path).name} (distance {top.matches[0].distance:.3f})"
    )

    modes_png = _draw_modes(dataset, searcher_weights, out, device)
    notice("[5/5] StRA mode maps drawn")
    return {
        "seconds": round(time.time() - started, 1),
        "metrics_before": _headline(before),
        "metrics_after": _headline(after),
        "outputs": {
            "dataset": str(data_root),
            "run": str(plan.out_dir),
            "trained_model": summary["model_final"],
            "metrics_log": summary["metrics_log"],
            "cmc_plot": str(cmc_png),
            "gallery_features": str(gallery_file),
            "ranked_list": str(ranklist_png),
            "mode_maps": str(modes_png),
        },
        "search_model": searcher_weights,
        "trained_model_sha256": trained_info["weights_sha256"],
    }


def _extract_and_search(dataset: Any, weights: str, out: Path, device: str, workers: int):

    net, info = load_model(None, weights, device=device)
    gallery_file = out / "gallery.npy"
    extract_to_file(
        net,
        info,
        [s.path for s in dataset.gallery],
        gallery_file,
        device=device,
        workers=workers,
        progress=False,
    )
    queries = [dataset.query[0].path, dataset.query[len(dataset.query) // 2].path]
    feats, meta = extract_query_features(
        queries, load_meta(gallery_file), weights=weights, device=device, workers=0, progress=False
    )
    results = search_gallery(feats, meta, gallery_file, top_k=8, progress=False).results
    ranklist_png = out / "ranked_list.png"
    save_search_ranklist(results, ranklist_png)
    return gallery_file, ranklist_png, results[0]


def _draw_modes(dataset: Any, weights: str, out: Path, device: str) -> Path:
    net, info = load_model(None, weights, device=device)
    first = dataset.query[0].path
    return explain_modes(net, info, [first], out / "mode_maps.png", block="last").figures[0]


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(metrics[key]) for key in ("mAP", "rank1", "rank5", "rank10", "mINP")}
