"""Device selection shared by every command (``--device auto|cpu|cuda[:N]``)."""

from __future__ import annotations

import torch

from reid_stra.errors import ReidError


def resolve_device(name: str = "auto") -> torch.device:
    """Map a user's ``--device`` string to a torch device, failing clearly when unavailable."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReidError(f"--device {name}: CUDA is not available here; use --device cpu or auto")
        return torch.device(name)
    raise ReidError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
