"""`reid-stra evaluate`: rank-1/5/10, mAP and mINP of a model (or of feature files) on a dataset.

The command with the most options and output forms (feature files or models, several models in
one table, CMC plot, HTML report, saved features); the work itself is
:mod:`reid_stra.retrieval.evaluation`, :mod:`reid_stra.retrieval.feature_evaluation` and
:mod:`reid_stra.metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reid_stra.cli.options import (
    BackendChoice,
    BatchSize,
    DataOptions,
    Device,
    JsonOutput,
    PrecisionChoice,
    Rerank,
    RerankK1,
    RerankK2,
    RerankLambda,
    Workers,
    chosen_precision,
    limit_faiss_threads,
    model_option,
    weights_option,
)
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted
from reid_stra.errors import ReidError

if TYPE_CHECKING:  # the module is imported for --help: nothing heavy at import time
    from reid_stra.retrieval.feature_evaluation import EvaluationRun

_MODE_TITLES = {
    "standard": "standard protocol (torchreid / fast-reid)",
    "market_official": "original Market-1501 protocol (MATLAB, trapezoid AP)",
}


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("evaluate")(evaluate)


def evaluate(
    data: list[str] = typer.Option(
        [],
        "--data",
        show_default="none",
        help="Dataset name (see `reid-stra datasets`); repeat --data/--root to evaluate on several "
        "datasets in one table (e.g. in-domain and cross-domain).",
    ),
    root: list[Path] = typer.Option(
        [],
        "--root",
        show_default="none",
        help="Folder holding the dataset; one per --data, or one --data for several --root.",
    ),
    data_opt: DataOptions = (),
    model: Annotated[
        list[str],
        model_option(
            help="Model name; repeat it (or --weights) to compare several models in one table and plot."
        ),
    ] = (),
    weights: Annotated[
        list[Path],
        weights_option(help="Checkpoint to evaluate; repeatable: --weights A --weights B compares them."),
    ] = (),
    query_features: Path | None = typer.Option(
        None,
        "--query-features",
        show_default="none",
        help="Precomputed query features (.npy + .json sidecar) instead of a model.",
    ),
    gallery_features: Path | None = typer.Option(
        None,
        "--gallery-features",
        show_default="none",
        help="Precomputed gallery features (.npy + .json sidecar).",
    ),
    metric: str = typer.Option(
        "euclidean", "--metric", help="Distance: euclidean (squared, as torchreid) or cosine."
    ),
    normalize: bool = typer.Option(
        True, "--normalize/--no-normalize", help="L2-normalize features before computing distances."
    ),
    flip: bool = typer.Option(False, "--flip", help="Average each image's features with its mirror's."),
    rerank: Rerank = False,
    k1: RerankK1 = 20,
    k2: RerankK2 = 6,
    lambda_value: RerankLambda = 0.3,
    qe: bool = typer.Option(False, "--qe", help="Alpha-weighted query expansion (fast-reid's AQE)."),
    qe_k: int = typer.Option(10, "--qe-k", help="Query expansion: neighbours averaged (self included)."),
    qe_alpha: float = typer.Option(
        3.0, "--qe-alpha", help="Query expansion: similarity exponent (0: average QE)."
    ),
    mode: str = typer.Option(
        "standard", "--mode", help="standard (torchreid/fast-reid) or market_official (MATLAB trapezoid AP)."
    ),
    max_rank: int = typer.Option(50, "--max-rank", help="Length of the CMC curve."),
    cmc_plot: Path | None = typer.Option(
        None, "--cmc-plot", show_default="none", help="Also save the CMC curve(s) as this PNG."
    ),
    save_features: Path | None = typer.Option(
        None,
        "--save-features",
        show_default="none",
        help="Folder to keep the extracted features in (query.npy, gallery.npy + sidecars; a subfolder "
        "per model when comparing), for --query-features/--gallery-features reuse.",
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        show_default="none",
        help="Write a self-contained HTML page: metrics, CMC, per-query AP, worst queries, settings.",
    ),
    batch_size: BatchSize = 64,
    workers: Workers = 2,
    device: Device = "auto",
    precision: PrecisionChoice = "auto",
    backend: BackendChoice = "auto",
    as_json: JsonOutput = False,
) -> None:
    """Evaluate re-ID accuracy (rank-1/5/10, mAP, mINP) on a dataset's query/gallery split."""
    limit_faiss_threads()
    params = dict(locals())  # first: the options as given, by name
    from reid_stra.metrics.evaluation import SETTINGS
    from reid_stra.utils.device import resolve_device

    # The protocol settings go to evaluate_features under their own names (declared once, above).
    options = {key: params[key] for key in (*SETTINGS, "max_rank", "mode")}
    _check_options(options)
    for option, target, suffixes in (
        ("--cmc-plot", cmc_plot, (".png",)),
        ("--report", report, (".html", ".htm")),
    ):
        if target is not None and target.suffix.lower() not in suffixes:
            raise ReidError(f"{option} {target}: give a file name ending in {' or '.join(suffixes)}")
    resolved = resolve_device(device)
    if query_features is not None or gallery_features is not None:
        if model or weights or flip or save_features is not None:
            used = "--model" if model else "--weights" if weights else "--flip" if flip else "--save-features"
            raise ReidError(
                f"{used} applies to extracting features; with --query-features/--gallery-features "
                "the features already exist: drop it, or drop the feature files to extract anew"
            )
        if len(data) > 1 or len(root) > 1:
            raise ReidError(
                "--query-features/--gallery-features hold one split: give at most one --data and --root"
            )
        data_name, data_root = (data[0] if data else None), (root[0] if root else None)
        runs = [
            _evaluate_files(
                query_features, gallery_features, data_name, data_root, data_opt, options, resolved
            )
        ]
    else:
        pairs = _model_weight_pairs(model, weights)
        if batch_size < 1:
            raise ReidError(f"--batch-size {batch_size}: must be at least 1")
        datasets = [_load_split(name, folder, data_opt) for name, folder in _dataset_pairs(data, root)]
        arithmetic = chosen_precision(precision, device)
        keep = save_features is not None or report is not None
        from reid_stra.retrieval.feature_evaluation import evaluate_on_dataset

        runs = [
            evaluate_on_dataset(
                dataset,
                name,
                path,
                device=str(resolved),
                backend=backend,
                precision=arithmetic.name,
                flip=flip,
                batch_size=batch_size,
                workers=workers,
                keep_features=keep,
                notice=info,
                progress=progress_wanted(),
                **options,
            )  # fmt: skip
            for name, path in pairs
            for dataset in datasets
        ]
    labels = _labels(runs)
    if save_features is not None:
        _save_features(runs, labels, save_features)
    summaries = [run.summary() for run in runs]
    title = _split_title(runs)
    if cmc_plot is not None:
        from reid_stra.viz.cmc import CmcCurve, save_cmc_plots

        curves = [
            CmcCurve(label, run.result["cmc"], run.result["mAP"])
            for label, run in zip(labels, runs, strict=True)
        ]
        mAP = f", mAP {runs[0].result['mAP']:.1%}" if len(runs) == 1 else ""  # noqa: N806
        written = str(save_cmc_plots(curves, cmc_plot, title=f"CMC: {title}{mAP}"))
        for summary in summaries:
            summary["cmc_plot"] = written
    if report is not None:
        written = str(_write_report(report, runs, labels, title, summaries[0]["settings"]))
        for summary in summaries:
            summary["report"] = written
    if as_json:
        emit_json(
            summaries[0]
            if len(runs) == 1
            else {
                "runs": [
                    dict(summary, label=label, dataset=_dataset_label(run.source))
                    for summary, label, run in zip(summaries, labels, runs, strict=True)
                ]
            }
        )
        return
    if len(runs) == 1:
        _print_summary(summaries[0])
    else:
        _print_comparison(
            summaries, labels, several_datasets=len({_dataset_label(r.source) for r in runs}) > 1
        )


def _model_weight_pairs(models: list[str], weights: list[Path]) -> list[tuple[str | None, Path | None]]:
    """--model/--weights to (model, weights) runs: paired in order, or one of them repeated."""
    if not models and not weights:
        return [(None, None)]
    if not weights:
        return [(name, None) for name in models]
    if not models:
        return [(None, path) for path in weights]
    if len(models) == 1:
        return [(models[0], path) for path in weights]
    if len(models) == len(weights):
        return list(zip(models, weights, strict=True))
    raise ReidError(
        f"--model given {len(models)} times and --weights {len(weights)} times; give one --model for all "
        "--weights, or one --model per --weights (in the same order)"
    )


def _dataset_pairs(data: list[str], roots: list[Path]) -> list[tuple[str | None, Path | None]]:
    """--data/--root to (name, folder) datasets: paired in order, or one of them repeated."""
    if len(data) <= 1 and len(roots) <= 1:
        return [(data[0] if data else None, roots[0] if roots else None)]
    if len(data) == 1:
        return [(data[0], folder) for folder in roots]
    if len(roots) == 1:
        return [(name, roots[0]) for name in data]
    if len(data) == len(roots):
        return list(zip(data, roots, strict=True))
    raise ReidError(
        f"--data given {len(data)} times and --root {len(roots)} times; give one --root per --data "
        "(in the same order), or one --data for several --root"
    )


def _dataset_label(source: dict[str, Any]) -> str:
    """A dataset as tables name it: the reader, and the folder when it says more (a CUHK03 split
    in Market's layout is read by the market1501 reader)."""
    if not source.get("data"):
        return "features"
    folder = Path(source["root"]).name
    return source["data"] if folder.lower() == source["data"].lower() else f"{source['data']} ({folder})"


def _labels(runs: list[EvaluationRun]) -> list[str]:
    """Names for tables and legends: the model (plus the weights file where models repeat), and
    the dataset where several are evaluated."""
    names = [str(run.source.get("model") or "features") for run in runs]
    keys = [(name, run.source.get("weights")) for name, run in zip(names, runs, strict=True)]
    if len({name for name, _ in keys}) != len(set(keys)):
        names = [
            f"{name} ({Path(weights).name})" if weights else f"{name} #{number}"
            for number, (name, weights) in enumerate(keys, start=1)
        ]
    datasets = [_dataset_label(run.source) for run in runs]
    if len(set(datasets)) > 1:
        return [f"{name} on {dataset}" for name, dataset in zip(names, datasets, strict=True)]
    return names


def _split_title(runs: list[EvaluationRun]) -> str:
    datasets = list(dict.fromkeys(_dataset_label(run.source) for run in runs))
    if len(datasets) > 1:
        return "query/gallery of " + ", ".join(datasets)
    source = runs[0].source
    if source.get("data"):
        return f"{source['data']} query/gallery ({Path(source['root']).name})"
    return f"{Path(source['query_features']).name} vs {Path(source['gallery_features']).name}"


def _save_features(runs: list[EvaluationRun], labels: list[str], folder: Path) -> None:
    from reid_stra.retrieval.evaluation import save_split_features

    for label, run in zip(labels, runs, strict=True):
        target = folder if len(runs) == 1 else folder / _safe_name(label)
        written = save_split_features(
            target, run.result["features"], run.query, run.gallery, run.model_info or {},
            input_size=run.result["input_size"], flip=run.source["flip"], precision=run.source["precision"],
        )  # fmt: skip
        info(f"features of {label} saved: {written['query']}, {written['gallery']}")


def _safe_name(label: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label).strip("_") or "model"


def _write_report(
    path: Path, runs: list[EvaluationRun], labels: list[str], title: str, settings: dict[str, Any]
) -> Path:
    from reid_stra.viz.report import report_run, write_report

    report_runs = [
        report_run(
            label,
            run.result,
            run.query,
            run.gallery,
            run.source,
            metric=settings["metric"],
            normalize=settings["normalize"],
            worst=_WORST_QUERIES,
        )  # fmt: skip
        for label, run in zip(labels, runs, strict=True)
    ]
    written = write_report(path, report_runs, title=title, settings=settings)
    info(f"report written to {written}")
    return written


def _print_comparison(summaries: list[dict[str, Any]], labels: list[str], several_datasets: bool) -> None:
    metrics = ("mAP", "rank1", "rank5", "rank10", "mINP", "num_valid")
    header = ["mAP", "rank-1", "rank-5", "rank-10", "mINP", "queries"]
    if several_datasets:  # one row per (dataset, model): each dataset's own protocol line
        rows = [
            (_dataset_label(s["source"]), s["source"].get("model") or "features", *(s[m] for m in metrics))
            for s in summaries
        ]
        header = ["dataset", "model", *header]
    else:
        rows = [(label, *(s[m] for m in metrics)) for label, s in zip(labels, summaries, strict=True)]
        header = ["model", *header]
    mode = _MODE_TITLES[summaries[0]["mode"]]
    print_table(f"evaluation, {mode}", header, rows)
    if "cmc_plot" in summaries[0]:
        info(f"CMC curves written to {summaries[0]['cmc_plot']}")


_WORST_QUERIES = 8


def _check_options(options: dict[str, Any]) -> None:
    """Fail on bad option values before any slow work (loading a model, reading images)."""
    from reid_stra.metrics.evaluation import EvalSettings

    EvalSettings(**options)  # checks every value


def _load_split(data: str | None, root: Path | None, data_opt: list[str]):
    from reid_stra.data.datasets import load_dataset, parse_dataset_options

    if data is None or root is None:
        missing = "--data" if data is None else "--root"
        raise ReidError(
            f"{missing} is missing; evaluation needs --data NAME --root DIR "
            "(or --query-features/--gallery-features files with ids in their sidecars)"
        )
    dataset = load_dataset(
        data,
        root,
        splits=("query", "gallery"),
        **parse_dataset_options(data, data_opt),
        progress=progress_wanted(),
    )
    if not dataset.query or not dataset.gallery:
        raise ReidError(f"--root {root}: the {data} query or gallery split is empty; check the folder")
    for warning in dataset.warnings:
        info(f"[yellow]warning:[/] {warning}")
    return dataset


def _evaluate_files(query_file, gallery_file, data, root, data_opt, options, device) -> EvaluationRun:
    from reid_stra.retrieval.feature_evaluation import evaluate_feature_files
    from reid_stra.retrieval.features import features_path

    if query_file is None or gallery_file is None:
        missing = "--query-features" if query_file is None else "--gallery-features"
        raise ReidError(f"{missing} is missing; give both --query-features and --gallery-features")
    labelled = None
    if data is not None or root is not None:
        dataset = _load_split(data, root, data_opt)
        labelled = [*dataset.query, *dataset.gallery]
    done = evaluate_feature_files(
        features_path(query_file, "--query-features"),
        features_path(gallery_file, "--gallery-features"),
        labelled=labelled,
        device=device,
        notice=info,
        **options,
        progress=progress_wanted(),
    )
    return done


def _print_summary(summary: dict[str, Any]) -> None:
    rows = [
        ("rank-1", summary["rank1"]),
        ("rank-5", summary["rank5"]),
        ("rank-10", summary["rank10"]),
        ("mAP", summary["mAP"]),
        ("mINP", summary["mINP"]),
        ("valid queries", summary["num_valid"]),
        ("skipped queries (no positive in another camera)", summary["num_invalid"]),
    ]
    print_table(f"evaluation, {_MODE_TITLES[summary['mode']]}", ["metric", "value"], rows)
    settings = summary["settings"]
    metric = "squared Euclidean" if settings["metric"] == "euclidean" else "1 - cosine similarity"
    extras = [metric + (" on L2-normalized features" if settings["normalize"] else "")]
    if summary["source"].get("flip"):
        extras.append("flip-averaged")
    if settings["rerank"]:
        extras.append(f"k-reciprocal re-ranking (k1={settings['k1']}, k2={settings['k2']}, "
                      f"lambda={settings['lambda_value']})")  # fmt: skip
    if settings["qe"]:
        extras.append(f"query expansion (k={settings['qe_k']}, alpha={settings['qe_alpha']})")
    info("distance: " + ", ".join(extras))
    if summary["mode"] == "market_official" and summary["num_invalid"]:
        info("market_official counts skipped queries as 0 in every average, like the MATLAB code")
    if "cmc_plot" in summary:
        info(f"CMC curve written to {summary['cmc_plot']}")
