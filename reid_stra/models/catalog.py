"""The model table of ``reid-stra models``: our params/FLOPs beside the paper's numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from reid_stra.errors import ReidError
from reid_stra.models.build import build_model
from reid_stra.models.complexity import measure_complexity
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
    input_size: tuple[int, int] = (256, 128),
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
    with torch.random.fork_rng():  # building initializes weights: leave the caller's RNG alone
        model = build_model(name)
    row: dict[str, Any] = {
        "name": name,
        "description": entry.description,
        "embedding_dim": model.embedding_dim,
        "params_m": None,
        "gflops": None,
        "input_size": list(input_size),
        "paper": dict(entry.paper),
        "shipped_weights": str(shipped_weights(name) or "") or None,
        "default": name == default_model_name(),
        "accuracy": shipped_accuracy(name),
    }
    if complexity:
        measured = measure_complexity(model, input_size)
        row["params_m"] = round(measured.params_m, 3)
        row["gflops"] = round(measured.gflops, 3)
    if advance is not None:
        advance(1, info=name)
    return row
