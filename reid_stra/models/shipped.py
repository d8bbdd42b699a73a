"""Trained weights shipped with the repository (``weights/<model>_<dataset>.pth`` + a card .md).

They let ``reid-stra extract/search/explain`` work without ``--weights``. The folder is the
repository's ``weights/`` next to the package source, or ``$REID_STRA_WEIGHTS_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

from reid_stra.models.registry import list_models

WEIGHTS_DIR_ENV = "REID_STRA_WEIGHTS_DIR"
PREFERRED_DEFAULT = "stra_mobilenetv2"
SUFFIXES = (".pth", ".pt")


def weights_dir() -> Path:
    configured = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "weights"


def _owner(filename: str, names: list[str]) -> str | None:
    """The model a weights file belongs to: the longest model name it starts with (``name`` or ``name_*``).

    Longest first, so ``stra_mobilenetv2_x1_4_market.pth`` is not taken for ``stra_mobilenetv2``.
    """
    stem = filename.rsplit(".", 1)[0]
    for name in sorted(names, key=len, reverse=True):
        if stem == name or stem.startswith(name + "_"):
            return name
    return None


def shipped_weights(model_name: str) -> Path | None:
    """The shipped weights file of ``model_name`` (first by file name), or None."""
    folder = weights_dir()
    if not folder.is_dir():
        return None
    names = list_models()
    candidates = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix in SUFFIXES and _owner(path.name, names) == model_name
    )
    return candidates[0] if candidates else None


def models_with_shipped_weights() -> list[str]:
    folder = weights_dir()
    if not folder.is_dir():
        return []
    names = list_models()
    owners = {_owner(p.name, names) for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES}
    return sorted(name for name in owners if name)


def default_model_name() -> str:
    """The model used when none is named: the shipped StRA model (``stra_mobilenetv2`` first)."""
    shipped = models_with_shipped_weights()
    if PREFERRED_DEFAULT in shipped:
        return PREFERRED_DEFAULT
    stra = [name for name in shipped if name.startswith("stra_")]
    if stra:
        return stra[0]
    return shipped[0] if shipped else PREFERRED_DEFAULT
