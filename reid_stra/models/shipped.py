"""Trained weights shipped with the package (``weights/<model>_<dataset>.pth`` + a card .md).

They let ``reid-stra extract/search/explain`` work without ``--weights``. The repository keeps
them in its top-level ``weights/``; a wheel or sdist carries that folder as the package data
``reid_stra/weights`` (found through :mod:`importlib.resources`), so an installed copy finds
them too. ``$REID_STRA_WEIGHTS_DIR`` points to another folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from reid_stra.models.registry import list_models

WEIGHTS_DIR_ENV = "REID_STRA_WEIGHTS_DIR"
PREFERRED_DEFAULT = "mobilenetv2"  # the most accurate shipped model (weights/README.md)
SUFFIXES = (".pth", ".pt")


def weights_dirs() -> list[Path]:
    """Where shipped weights are looked for, in order: the configured folder, else the installed
    package data, then the checkout's ``weights/`` (an editable install has no package copy)."""
    configured = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if configured:
        return [Path(configured).expanduser()]
    packaged = Path(str(resources.files("reid_stra").joinpath("weights")))
    checkout = Path(__file__).resolve().parents[2] / "weights"
    return [packaged, checkout]


def weights_dir() -> Path:
    """The first folder of :func:`weights_dirs` that exists (the first one when none does)."""
    folders = weights_dirs()
    return next((folder for folder in folders if folder.is_dir()), folders[0])


def searched_locations() -> str:
    """The folders :func:`weights_dirs` names, for error messages."""
    return " or ".join(str(folder) for folder in weights_dirs())


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
    """The model used when none is named: the most accurate shipped one (``PREFERRED_DEFAULT``),
    else a shipped StRA model, else any shipped model."""
    shipped = models_with_shipped_weights()
    if PREFERRED_DEFAULT in shipped:
        return PREFERRED_DEFAULT
    stra = [name for name in shipped if name.startswith("stra_")]
    if stra:
        return stra[0]
    return shipped[0] if shipped else PREFERRED_DEFAULT


def default_stra_model_name() -> str:
    """The shipped StRA model (what ``explain`` shows when no model is named)."""
    stra = [name for name in models_with_shipped_weights() if name.startswith("stra_")]
    return "stra_mobilenetv2" if "stra_mobilenetv2" in stra or not stra else stra[0]
