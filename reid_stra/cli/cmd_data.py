"""`reid-stra demo-data` (write the synthetic dataset) and `reid-stra datasets` (inspect one)."""

from __future__ import annotations

from pathlib import Path

import typer

from reid_stra.cli.options import DataOptions, DatasetRoot, JsonOutput
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("demo-data")(demo_data)
    app.command("datasets")(datasets)


def demo_data(
    out_dir: Path = typer.Argument(
        ..., metavar="OUT_DIR", help="Folder to write the dataset into (created if missing)."
    ),
    train_ids: int = typer.Option(40, "--train-ids", help="Identities in bounding_box_train/."),
    test_ids: int = typer.Option(20, "--test-ids", help="Identities in query/ and bounding_box_test/."),
    cameras: int = typer.Option(4, "--cameras", help="Number of cameras (2-9)."),
    images_per_id_cam: int = typer.Option(
        4,
        "--images-per-id-cam",
        help="Images per identity and camera (test ids: 1 query + the rest gallery).",
    ),
    height: int = typer.Option(128, "--height", help="Image height in pixels."),
    width: int = typer.Option(64, "--width", help="Image width in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same images."),
    force: bool = typer.Option(False, "--force", help="Overwrite a dataset already in OUT_DIR."),
    as_json: JsonOutput = False,
) -> None:
    """Write a small synthetic re-ID dataset in the Market-1501 layout (no download)."""
    from reid_stra.data.datasets import load_dataset
    from reid_stra.data.synthetic import make_synthetic_dataset

    root = make_synthetic_dataset(
        out_dir,
        num_train_ids=train_ids,
        num_test_ids=test_ids,
        cameras=cameras,
        images_per_id_cam=images_per_id_cam,
        size=(height, width),
        seed=seed,
        overwrite=force,
        progress=progress_wanted(),
    )
    dataset = load_dataset("market1501", root, progress=progress_wanted())
    rows = dataset.summary()
    if as_json:
        emit_json({"root": str(root), "data": "market1501", "splits": rows})
        return
    _print_summary(f"synthetic dataset in {root}", rows)
    info(f"use it with: --data market1501 --root {root}")


def datasets(
    data: str | None = typer.Option(
        None,
        "--data",
        show_default="list the supported datasets",
        help="Dataset name; omit to list the supported datasets.",
    ),
    root: DatasetRoot = None,
    data_opt: DataOptions = (),
    verify: bool = typer.Option(False, "--verify", help="Decode every image and report unreadable ones."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="With --verify: drop unreadable images, do not fail."
    ),
    as_json: JsonOutput = False,
) -> None:
    """Summarize a dataset (ids, images, cameras per split) or list the supported datasets."""
    from reid_stra.data.datasets import dataset_info, list_datasets, load_dataset, parse_dataset_options
    from reid_stra.errors import ReidError

    if data is None:
        if root is not None:
            raise ReidError(
                "--root given without --data; add --data NAME (run without options to list names)"
            )
        infos = [dataset_info(name) for name in list_datasets()]
        if as_json:
            emit_json(
                [{"name": i.name, "title": i.title, "layout": i.layout, "options": i.options} for i in infos]
            )
            return
        rows = [(i.name, i.title, i.layout, ", ".join(i.options) or "-") for i in infos]
        columns = ["name", "dataset", "expected layout", "--data-opt"]
        print_table("supported datasets (--data NAME --root DIR)", columns, rows)
        for i in infos:
            for key, text in i.options.items():
                info(f"--data {i.name} --data-opt {key}=...: {text}")
        return
    if root is None:
        raise ReidError(f"--data {data}: --root is missing; pass --root DIR (the folder holding the dataset)")
    options = parse_dataset_options(data, data_opt)
    dataset = load_dataset(
        data, root, verify_images=verify, skip_bad=skip_bad, **options, progress=progress_wanted()
    )
    rows = dataset.summary()
    if as_json:
        emit_json(
            {
                "data": dataset.name,
                "root": str(dataset.root),
                "splits": rows,
                "warnings": dataset.warnings,
                "skipped": [{"path": p, "reason": r} for p, r in dataset.skipped],
            }
        )
        return
    _print_summary(f"{dataset.name} in {dataset.root}", rows)
    for warning in dataset.warnings:
        info(f"[yellow]warning:[/] {warning}")


def _print_summary(title: str, rows: list[dict]) -> None:
    columns = ["split", "ids", "images", "cameras", "distractors"]
    print_table(title, columns, [[row[c] for c in columns] for row in rows])
