"""`reid-stra adapt`: adapt a model to a user's cameras from their unlabeled crops (Cluster Contrast)."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import (
    DataOptions,
    Device,
    IdPattern,
    IdsFile,
    JsonOutput,
    ModelName,
    PrecisionChoice,
    WeightsFile,
    Workers,
    limit_faiss_threads,
)
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("adapt")(adapt)


def adapt(
    inputs: list[str] = typer.Argument(
        ...,
        metavar="CROPS",
        help="Unlabeled person crops from your cameras: images, folders (searched recursively), globs "
        "or text files listing one path per line. Person ids in their names are never used.",
    ),
    out: Path = typer.Option(
        ..., "-o", "--out", "--output", help="Run folder: adapt.json, last.pth, model_final.pth."
    ),
    model: ModelName = None,
    weights: WeightsFile = None,
    rounds: int = typer.Option(8, "--rounds", help="Rounds of embed, cluster, train."),
    iters: int = typer.Option(100, "--iters", help="Training batches per round."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per training batch (P ids x K images)."),
    num_instances: int = typer.Option(
        4, "--num-instances", help="Images per pseudo-identity in a batch (K)."
    ),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate."),
    eps: str = typer.Option(
        "auto",
        "--eps",
        help="DBSCAN radius on Jaccard distances (larger merges more images into each cluster), or "
        "auto: read from round 1's features (UDAP's rule, see --eps-top-fraction).",
    ),
    eps_top_fraction: float = typer.Option(
        1.6e-3,
        "--eps-top-fraction",
        help="With --eps auto: the radius is the mean distance of this fraction of closest pairs.",
    ),
    min_samples: int = typer.Option(4, "--min-samples", help="Images a cluster needs at least."),
    k1: int = typer.Option(30, "--k1", help="k-reciprocal neighbours for the Jaccard distance."),
    k2: int = typer.Option(6, "--k2", help="Neighbours averaged in the Jaccard distance's query expansion."),
    camera_aware: bool = typer.Option(
        False,
        "--camera-aware",
        help="Use camera ids (needed): cluster camera-centred features, and train one proxy per "
        "(cluster, camera) with intra- and inter-camera losses (CAP). Recommended when cameras are known.",
    ),
    supervised: bool = typer.Option(
        False,
        "--supervised",
        help="Research only: use the images' person ids as the clusters (a supervised upper bound).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (sampling and augmentation)."),
    workers: Workers = 2,
    device: Device = "auto",
    precision: PrecisionChoice = "auto",
    ids_file: IdsFile = None,
    id_pattern: IdPattern = None,
    val_root: Path | None = typer.Option(
        None,
        "--val-root",
        show_default="none",
        help="Research only: a labelled target dataset whose query/gallery mAP is reported every round.",
    ),
    val_data: str = typer.Option("market1501", "--val-data", help="Dataset reader of --val-root."),
    val_data_opt: DataOptions = (),
    resume: bool = typer.Option(False, "--resume", help="Continue a stopped run in --out."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check the inputs and print the plan; train nothing."
    ),
    as_json: JsonOutput = False,
) -> None:
    """Teach a model your cameras from unlabeled crops: cluster them into pseudo-identities, train, repeat."""
    limit_faiss_threads()
    from reid_stra.data import load_dataset
    from reid_stra.data.datasets.registry import parse_dataset_options
    from reid_stra.engine.adapt import adapt as run_adapt
    from reid_stra.engine.adapt_plan import AdaptConfig, AdaptPlan, check_plan
    from reid_stra.retrieval.ids import id_source
    from reid_stra.retrieval.inputs import expand_inputs

    config = AdaptConfig(
        rounds=rounds,
        iters=iters,
        batch_size=batch_size,
        num_instances=num_instances,
        lr=lr,
        eps=_parse_eps(eps),
        eps_top_fraction=eps_top_fraction,
        min_samples=min_samples,
        k1=k1,
        k2=k2,
        camera_aware=camera_aware,
        seed=seed,
        workers=workers,
        device=device or "auto",
        precision=precision or "auto",
    )
    paths = expand_inputs(inputs, "CROPS")
    parsed = id_source(ids_file, id_pattern, required=("pid", "camid") if supervised else ("camid",)).parse(
        paths
    )
    plan = AdaptPlan(
        paths,
        out,
        config,
        cameras=parsed.camids,
        model=model,
        weights=weights and str(weights),
        supervised_ids=(parsed.pids or [None] * len(paths)) if supervised else None,
    )
    check_plan(plan)
    if val_root is not None:
        dataset = load_dataset(
            val_data,
            val_root,
            splits=("query", "gallery"),
            **parse_dataset_options(val_data, val_data_opt),
            progress=progress_wanted(),
        )
        plan.val_query, plan.val_gallery = dataset.query, dataset.gallery
    cameras = None if parsed.camids is None else len({c for c in parsed.camids if c is not None})
    if dry_run:
        rows = [
            ("images", len(paths)),
            ("cameras", cameras if cameras is not None else "unknown (not needed unless --camera-aware)"),
            ("start", str(weights) if weights else f"shipped weights of {model or 'the default model'}"),
            ("rounds x batches", f"{rounds} x {iters} of {batch_size}"),
            ("out", str(out)),
        ]
        if as_json:
            emit_json({key.replace(" ", "_"): value for key, value in rows})
        else:
            print_table("adapt plan (dry run)", ["", "value"], rows)
        return
    card = run_adapt(plan, resume=resume, notice=info, progress=progress_wanted())
    if card.pop("rank") != 0:
        return  # under torchrun, rank 0 reports for all processes
    final = out / "model_final.pth"
    if as_json:
        emit_json({**card, "weights": str(final)})
        return
    rows = [
        (
            record["round"],
            record["clusters"],
            record["outliers"],
            f"{record['loss']:.3f}",
            f"{record['mAP']:.4f}" if "mAP" in record else "-",
            f"{record['seconds']:.0f}",
        )
        for record in card["rounds"]
    ]
    print_table(
        f"adapted to {card['target_images']} images",
        ["round", "clusters", "outliers", "loss", "mAP", "s"],
        rows,
    )
    info(f"weights: {final} (use with --weights in extract, search, evaluate, export)")


def _parse_eps(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: a radius such as 0.5, or auto", param_hint="--eps") from None
