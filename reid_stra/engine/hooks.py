"""Callbacks around the training loop (fast-reid's ``HookBase``), so that what watches a run
(logging, checks, a test's interruption at a chosen batch) plugs in without the loop knowing it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TrainerHook:
    """Override any of these; each is called on every process of a run, in the loop's order."""

    def before_epoch(self, epoch: int) -> None:
        """``epoch`` (0-based) is about to start."""

    def after_step(self, epoch: int, step: int, indices: torch.Tensor) -> None:
        """Optimization step ``step`` (0-based, within ``epoch``) is done; ``indices`` are the
        training samples this process used in it (dataset rows)."""

    def after_epoch(self, epoch: int, record: dict[str, Any], model: nn.Module) -> None:
        """``epoch`` is done and checkpointed; ``record`` is its line of ``metrics.jsonl``,
        ``model`` the network as trained so far (this process's copy)."""
