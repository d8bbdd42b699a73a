"""`reid-stra train`: train a re-ID model with a named recipe, on one CPU or many GPUs.

Options left out keep the value of the recipe or the ``--config`` file (or, with ``--resume``,
of the run being continued); options given always win. Multi-GPU: the same command under
``torchrun --standalone --nproc_per_node N --no-python reid-stra train ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from reid_stra.cli.options import DataOptions, DatasetRoot, Device, JsonOutput, PrecisionChoice
from reid_stra.cli.output import emit_json, info, print_table, progress_wanted


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to the app."""
    app.command("train")(train)


# Which option sets which TrainConfig field (the rest: where the run goes and how it is run).
OPTION_FIELDS = {
    name: name
    for name in (
        *("data", "root", "model", "epochs", "batch_size", "lr", "optimizer", "scheduler"),
        *("warmup_epochs", "fixbase_epochs", "height", "width", "sampler", "num_instances", "neck"),
        *("pretrained", "weights", "diversity_weight", "eval_every", "val_ids", "device", "workers"),
        *("seed", "precision"),
    )
}
RUN_OPTIONS = (
    "data_opt",
    "recipe",
    "config",
    "out",
    "set_values",
    "resume",
    "overwrite",
    "dry_run",
    "as_json",
)


def train(
    data: str | None = typer.Option(
        None, "--data", help="Dataset name, see `reid-stra datasets` (default: market1501)."
    ),
    root: DatasetRoot = None,
    data_opt: DataOptions = (),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model name, see `reid-stra models` (default: the shipped default model, as every command).",
    ),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        show_default="paper, or the --config file's",
        help="Training recipe: paper (spec section 6) or strong (BNNeck, CE-LS + triplet).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        show_default="none",
        help="YAML/TOML file of config keys (e.g. a run's config.yaml); options override it.",
    ),
    out: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        "--output",
        help="Output folder for config, metrics log and checkpoints (default: runs/MODEL_DATA).",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", show_default="the recipe's", help="Epochs to train (paper: 100, strong: 120)."
    ),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        show_default="the recipe's",
        help="Images per step over all processes (paper: 32, strong: 64).",
    ),
    lr: float | None = typer.Option(
        None, "--lr", show_default="the recipe's", help="Base learning rate (paper: 3e-4, strong: 3.5e-4)."
    ),
    optimizer: str | None = typer.Option(
        None, "--optimizer", show_default="the recipe's", help="adam, adamw or sgd (both recipes: adam)."
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        show_default="the recipe's",
        help="step, multistep, cosine or constant (paper: step, strong: multistep).",
    ),
    warmup_epochs: int | None = typer.Option(
        None,
        "--warmup-epochs",
        show_default="the recipe's",
        help="Epochs of linear learning-rate warm-up (paper: 0, strong: 10).",
    ),
    fixbase_epochs: int | None = typer.Option(
        None,
        "--fixbase-epochs",
        show_default="the recipe's",
        help="First epochs that train only the new layers (paper: 8).",
    ),
    height: int | None = typer.Option(None, "--height", help="Input height in pixels (default: 256)."),
    width: int | None = typer.Option(None, "--width", help="Input width in pixels (default: 128)."),
    sampler: str | None = typer.Option(
        None,
        "--sampler",
        show_default="the recipe's",
        help="random (shuffled batches; paper) or identity (P identities x K images; strong).",
    ),
    num_instances: int | None = typer.Option(
        None,
        "--num-instances",
        help="K, images per identity in a batch of the identity sampler (default: 4).",
    ),
    neck: str | None = typer.Option(
        None, "--neck", help="Model head: fc, bnneck or none (default: the model's; strong: bnneck)."
    ),
    pretrained: str | None = typer.Option(
        None,
        "--pretrained",
        help="Backbone init: auto (ImageNet weights; offline without them, the shipped re-ID weights; "
        "default), imagenet, a weights FILE, or none.",
    ),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        show_default="none",
        help="Initialize the whole model from this checkpoint (a classifier of another size is skipped).",
    ),
    diversity_weight: float | None = typer.Option(
        None, "--diversity-weight", help="Weight of the StRA diversity loss; 0 disables it (default: 0.1)."
    ),
    eval_every: int | None = typer.Option(
        None,
        "--eval-every",
        help="Validate on query/gallery every N epochs and after the last; 0 never (default: 10).",
    ),
    val_ids: int | None = typer.Option(
        None,
        "--val-ids",
        help="Validate on N training ids held out from training (the same ids for every run); the "
        "dataset's query/gallery are then the test, evaluated once after the last epoch (default: 0, "
        "validate on query/gallery).",
    ),
    device: Device = None,
    workers: int | None = typer.Option(
        None, "--workers", help="Data-loading processes (default: the usable CPU cores minus one, at most 8)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed; same seed, same run (default: 1)."),
    precision: PrecisionChoice = None,
    set_values: list[str] = typer.Option(
        [], "--set", help="Any config key as KEY=VALUE (repeatable), e.g. --set triplet_soft=true."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last complete checkpoint (fresh if none)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the dataset summary and resolved config, then exit."
    ),
    as_json: JsonOutput = False,
) -> None:
    """Train a re-ID model; writes config.yaml, metrics.jsonl and checkpoints to --out."""
    params = dict(locals())  # first: the options as given, by name
    from reid_stra.engine.trainer import plan_run
    from reid_stra.engine.trainer import train as run_training

    # The options that set a TrainConfig field, where given (OPTION_FIELDS; a test checks the table
    # against this signature and the config, so a renamed option cannot silently stop applying).
    given = {field: params[option] for option, field in OPTION_FIELDS.items() if params[option] is not None}
    for key in ("root", "weights"):  # absolute, so that `--resume` works from any folder
        if key in given:
            given[key] = str(Path(given[key]).resolve())
    overrides: dict[str, Any] = _parse_set(set_values)
    overrides.update(given)
    if data_opt:
        from reid_stra.data.datasets import parse_dataset_options

        overrides["data_options"] = parse_dataset_options(overrides.get("data", "market1501"), data_opt)
    out_dir = out or _default_out(recipe, config, overrides)
    plan = plan_run(
        out_dir, recipe=recipe, config_file=config, overrides=overrides, resume=resume, overwrite=overwrite
    )
    if dry_run:
        _dry_run(plan, as_json)
        return
    # Ctrl-C: the CLI says what was kept and how to resume
    summary = run_training(plan, notice=info, progress=progress_wanted())
    if summary["rank"] != 0:
        return  # under torchrun, rank 0 reports for all processes
    if as_json:
        emit_json(summary)
        return
    final = summary["final"]
    rows = [(key, value) for key, value in final.items() if isinstance(value, (int, float))]
    print_table(f"epoch {summary['epochs_done']}/{summary['epochs']}", ["metric", "value"], rows)
    if summary["best_mAP"] is not None:
        info(f"best validation mAP {summary['best_mAP']:.4f} at epoch {summary['best_epoch']}")
    info(
        f"outputs in {summary['out']}: config.yaml, metrics.jsonl, last.pth"
        + (", best.pth" if summary["best_checkpoint"] else "")
        + (", model_final.pth" if summary["model_final"] else "")
        + (", test.json" if summary["test"] else "")
    )


def _parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value``: values are read as YAML scalars (true, 3, 1e-4, [40, 70])."""
    import yaml

    from reid_stra.errors import ReidError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ReidError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set triplet_soft=true")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ReidError(f"--set {pair!r}: the value is not a valid YAML scalar or list") from None
    return values


def _default_out(recipe: str | None, config: Path | None, overrides: dict[str, Any]) -> Path:
    """``runs/<model>_<data>``, naming what the resolved config will train."""
    from reid_stra.engine.config import resolve_config

    resolved = resolve_config(recipe, config, overrides)
    return Path("runs") / f"{resolved.model}_{resolved.data}"


def _dry_run(plan: Any, as_json: bool) -> None:
    from reid_stra.data.datasets import load_dataset
    from reid_stra.models.registry import get_entry

    config = plan.config
    get_entry(config.model)  # an unknown model name fails here, with a suggestion
    dataset = load_dataset(config.data, config.root, **config.data_options, progress=progress_wanted())
    for note in [*plan.notes, *(f"warning: {w}" for w in dataset.warnings)]:  # stderr: JSON stays clean
        info(note)
    if as_json:
        emit_json(
            {
                "out": str(plan.out_dir),
                "recipe": plan.recipe,
                "resume_from": str(plan.resume_path) if plan.resume_path else None,
                "data": {"name": dataset.name, "root": str(dataset.root), "splits": dataset.summary()},
                "config": config.to_dict(),
            }
        )
        return
    columns = ["split", "ids", "images", "cameras", "distractors"]
    print_table(
        f"{dataset.name} in {dataset.root}", columns, [[r[c] for c in columns] for r in dataset.summary()]
    )
    print_table(f"resolved config (recipe {plan.recipe})", ["key", "value"], list(config.to_dict().items()))
    info(f"dry run: nothing written; the run would write to {plan.out_dir}")
