"""Multi-process training's collectives (``torchrun`` + DDP): sums, gathers and random states.

Joining the process group is :mod:`reid_stra.utils.distributed` (extraction joins it too).
Without torchrun everything here is a no-op, so single-process and multi-process code are one.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from reid_stra.engine.checkpoint import capture_rng_state
from reid_stra.utils.distributed import DistContext, all_gather_objects


def all_reduce_sums(ctx: DistContext, values: dict[str, float]) -> dict[str, float]:
    """Sum each value over all processes (per-epoch loss and accuracy totals)."""
    if not ctx.enabled or not values:
        return dict(values)
    keys = sorted(values)
    backend_device = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=backend_device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist(), strict=True))


def gather_rng_states(ctx: DistContext) -> list[dict[str, Any]]:
    """Every rank's random state (index = rank), so each rank resumes its own streams."""
    return all_gather_objects(ctx, capture_rng_state())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
