"""The model table of ``reid-stra models``: our params/FLOPs beside the paper's numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE
from reid_stra.errors import ReidError
from reid_stra.models.build import build_model
from reid_stra.models.complexity import Complexity, measure_complexity
from reid_stra.models.registry import get_entry, list_models
from reid_stra.models.shipped import default_model_name, shipped_weights
from reid_stra.models.weights import read_checkpoint


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``"256x128"`` -> (256, 128); both sides positive multiples of 32 (the models' total stride)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise ReidError(f"{option} {text}: expected HEIGHTxWIDTH, e.g. 256x128") from None
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ReidError(f"{option} {text}: height and width must be positive multiples of 32, e.g. 256x128")
    return height, width


DOMAINS = ("in_domain", "cross_domain")

# Params, multiply-accumulates and embedding dim of every registered model at 256x128, as
# ``measure_complexity`` counts them, so the table of ``reid-stra models`` needs no model built
# (building the ResNet-50s is what took the time). A test re-measures every entry: a model change
# that alters them fails it until this table is updated. Other sizes and models are measured.
TABLE_SIZE = DEFAULT_INPUT_SIZE
COMPLEXITY_AT_TABLE_SIZE: dict[str, tuple[int, int, int]] = {
    "conv_mode_resnet50": (24570856, 4055920000, 512),
    "gconv_mode_resnet50": (18377704, 3263196544, 512),
    "local_resnet50": (17608336, 3164579584, 512),
    "mobilenetv2": (2223872, 349962240, 1280),
    "mobilenetv2_x1_4": (4315776, 680155136, 1792),
    "nonlocal_resnet50": (49751104, 7277510656, 512),
    "resnet50": (24557632, 4054319104, 512),
    "sasa_mode_resnet50": (17792488, 3187699072, 512),
    "sasa_resnet50": (17779264, 3186098176, 512),
    "se_resnet50": (27088624, 4056850096, 512),
    "stra_mobilenetv2": (2361728, 367049728, 1280),
    "stra_mobilenetv2_x1_4": (4562216, 711014784, 1792),
    "stra_resnet50": (17621560, 3166180480, 512),
    "stra_resnet50_nointer": (17621512, 3166180480, 512),
}


def shipped_accuracy(name: str) -> dict[str, Any] | None:
    """The card numbers packed with a model's shipped weights: ``{"in_domain": {"data", "mAP",
    "rank1"}, "cross_domain": {...}}`` (the same people's cameras vs a camera network never
    trained on), or None for a model without shipped weights or a file without them."""
    path = shipped_weights(name)
    if path is None:
        return None
    accuracy = read_checkpoint(path).get("meta", {}).get("accuracy")
    if not isinstance(accuracy, dict):
        return None
    return {domain: dict(accuracy[domain]) for domain in DOMAINS if isinstance(accuracy.get(domain), dict)}


def describe_models(
    names: list[str] | None = None,
    *,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    complexity: bool = True,
    advance: Callable[..., None] | None = None,
) -> list[dict[str, Any]]:
    """One row per model: name, description, embedding dim, params/FLOPs (ours), paper numbers, shipped.

    Runs single-threaded: a batch-1 forward is many tiny ops, which one thread runs faster than
    two (and without stalling behind other processes on a busy machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [_describe(name, input_size, complexity, advance) for name in names or list_models()]
    finally:
        torch.set_num_threads(threads)


def _describe(
    name: str, input_size: tuple[int, int], complexity: bool, advance: Callable[..., None] | None
) -> dict[str, Any]:
    entry = get_entry(name)
    tabled = COMPLEXITY_AT_TABLE_SIZE.get(name) if tuple(input_size) == TABLE_SIZE else None
    model = None
    if tabled is None:
        with torch.random.fork_rng():  # building initializes weights: leave the caller's RNG alone
            model = build_model(name)
    row: dict[str, Any] = {
        "name": name,
        "description": entry.description,
        "embedding_dim": tabled[2] if tabled else model.embedding_dim,
        "params_m": None,
        "gflops": None,
        "input_size": list(input_size),
        "paper": dict(entry.paper),
        "shipped_weights": str(shipped_weights(name) or "") or None,
        "default": name == default_model_name(),
        "accuracy": shipped_accuracy(name),
    }
    if complexity:
        measured = Complexity(*tabled[:2]) if tabled else measure_complexity(model, input_size)
        row["params_m"] = round(measured.params_m, 3)
        row["gflops"] = round(measured.gflops, 3)
    if advance is not None:
        advance(1, info=name)
    return row
