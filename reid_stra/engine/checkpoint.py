"""Training checkpoints: atomic writes, a previous copy to fall back on, exact RNG state.

``last.pth`` is written after every epoch through :func:`atomic_torch_save` (temp file +
fsync + rename), after the previous one was moved to ``prev.pth``. A kill at any moment
therefore leaves at least one complete checkpoint, and :func:`find_resume_checkpoint` falls
back to ``prev.pth`` when ``last.pth`` is missing or unreadable: at most one epoch is lost.
The checkpoint keeps the model weights under ``state_dict`` so ``reid_stra.load_weights``
reads it like any other weights file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid_stra.errors import ReidError
from reid_stra.models.weights import TRAINING_FORMAT
from reid_stra.utils.atomic import atomic_torch_save
from reid_stra.utils.notice import Notice, silent

FORMAT = TRAINING_FORMAT
FORMAT_VERSION = 1
LAST = "last.pth"
PREV = "prev.pth"
BEST = "best.pth"
# What a best checkpoint leaves out: it exists to be evaluated or exported, not resumed.
_RESUME_ONLY = ("optimizer", "scheduler", "scaler", "rng", "sampler")


def capture_rng_state() -> dict[str, Any]:
    """Every random generator a training step draws from, in a form ``weights_only`` loading accepts."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": numpy_state["state"]["key"].tolist(),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": np.asarray(numpy_state["key"], dtype=np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if (
        cuda_states is not None
        and torch.cuda.is_available()
        and len(cuda_states) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(cuda_states)


def save_training_checkpoint(out_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``last.pth``, keeping the previous complete one as ``prev.pth``."""
    out_dir = Path(out_dir)
    last = out_dir / LAST
    if last.exists():
        os.replace(last, out_dir / PREV)
    atomic_torch_save(last, {"format": FORMAT, "format_version": FORMAT_VERSION, **state})
    return last


def save_best_checkpoint(out_dir: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write the model part of ``state`` as ``best.pth`` (no optimizer: it is not for resuming)."""
    path = Path(out_dir) / BEST
    slim = {key: value for key, value in state.items() if key not in _RESUME_ONLY}
    atomic_torch_save(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **slim})
    return path


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check a ``reid-stra-train`` checkpoint; unreadable files raise :class:`ReidError`."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ReidError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # truncated zip, pickle errors, ...
        message = " ".join(str(exc).split())[:200]
        raise ReidError(f"{path}: unreadable checkpoint ({message})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ReidError(
            f"{path}: not a reid-stra training checkpoint; pass it with --weights to initialize instead"
        )
    missing = [key for key in ("state_dict", "optimizer", "epoch", "config") if key not in checkpoint]
    if missing:
        raise ReidError(f"{path}: checkpoint lacks {', '.join(missing)} (not resumable); start a fresh run")
    return checkpoint


def find_resume_checkpoint(
    out_dir: str | os.PathLike, notice: Notice = silent, quarantine: bool = True
) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint in ``out_dir`` (``last.pth``, else ``prev.pth``), or None.

    A damaged file is renamed ``*.damaged`` when ``quarantine`` (the process that owns the
    folder); other processes of a distributed run only read.
    """
    out_dir = Path(out_dir)
    candidates = [out_dir / LAST, out_dir / PREV]
    existing = [path for path in candidates if path.exists()]
    for path in existing:
        try:
            return path, load_training_checkpoint(path)
        except ReidError as exc:
            if not quarantine:
                continue
            # Set aside so the next save does not rotate a damaged file into prev.pth.
            damaged = path.with_name(path.name + ".damaged")
            os.replace(path, damaged)
            notice(f"skipping {exc}; moved it to {damaged.name}")
    if existing:
        raise ReidError(
            f"{out_dir}: no readable checkpoint ({', '.join(p.name for p in existing)} damaged, "
            "kept as *.damaged); use --overwrite to start again"
        )
    return None
