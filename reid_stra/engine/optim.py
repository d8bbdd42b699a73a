"""Optimizers and per-epoch learning-rate schedules with linear warm-up.

Re-ID recipes change the learning rate once per epoch (torchreid, fast-reid, the StRA paper),
so the schedule here is a pure function of the epoch: resuming at epoch ``e`` gives exactly
the rate an uninterrupted run had, with nothing else to restore.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from reid_stra.errors import ReidError, unknown_name_error

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("step", "multistep", "cosine", "constant")


def build_optimizer(
    param_groups: Iterable[dict[str, Any]],
    *,
    name: str,
    lr: float,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """Build Adam, AdamW or SGD over ``param_groups`` (each ``{"params": [...], ...}``).

    Groups may override ``lr`` or ``weight_decay`` (e.g. center-loss centers have no decay).
    """
    if lr <= 0:
        raise ReidError(f"--lr {lr}: the learning rate must be > 0")
    groups = [dict(group) for group in param_groups]
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov and momentum > 0
        )
    raise unknown_name_error("optimizer", name, OPTIMIZERS)


def lr_factor(
    epoch: int,
    *,
    schedule: str,
    epochs: int,
    step_size: int = 20,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.01,
    min_lr_factor: float = 0.0,
) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based).

    Warm-up rises linearly from ``warmup_factor`` at epoch 0 to 1 at ``warmup_epochs``. Step and
    multistep decay count epochs from the start of training (as torchreid and fast-reid do);
    cosine anneals from 1 to ``min_lr_factor`` over the epochs after the warm-up.
    """
    if schedule == "step":
        factor = gamma ** (epoch // max(1, step_size))
    elif schedule == "multistep":
        factor = gamma ** bisect.bisect_right(sorted(milestones), epoch)
    elif schedule == "cosine":
        span = max(1, epochs - warmup_epochs)
        progress = min(1.0, max(0.0, (epoch - warmup_epochs) / span))
        factor = min_lr_factor + (1.0 - min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "constant":
        factor = 1.0
    else:
        raise unknown_name_error("scheduler", schedule, SCHEDULES)
    if epoch < warmup_epochs:
        factor *= warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs
    return factor


class EpochSchedule(LRScheduler):
    """A torch LR scheduler whose rate is ``base_lr * lr_factor(epoch)``; call ``step()`` once per epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1, **schedule: Any) -> None:
        lr_factor(0, **schedule)  # validate the names before torch calls get_lr()
        self.schedule = dict(schedule)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = lr_factor(self.last_epoch, **self.schedule)
        return [base_lr * factor for base_lr in self.base_lrs]

    def resume_at(self, epochs_done: int) -> None:
        """Jump to the rate of epoch ``epochs_done`` as if ``step()`` had been called that often.

        The rate depends only on the epoch and this schedule, so a resumed run may even change
        the schedule (e.g. more ``epochs``) and still get the right rate.
        """
        self.last_epoch = epochs_done
        self._step_count = epochs_done + 1
        lrs = self.get_lr()
        for group, base_lr, lr in zip(self.optimizer.param_groups, self.base_lrs, lrs, strict=True):
            group["initial_lr"] = base_lr
            group["lr"] = lr
        self._last_lr = lrs


def build_scheduler(optimizer: torch.optim.Optimizer, **schedule: Any) -> EpochSchedule:
    """E.g. ``build_scheduler(opt, schedule="cosine", epochs=120, warmup_epochs=10)``: :func:`lr_factor`."""
    if schedule.get("warmup_epochs", 0) < 0:
        raise ReidError("--warmup-epochs must be >= 0")
    return EpochSchedule(optimizer, **schedule)
