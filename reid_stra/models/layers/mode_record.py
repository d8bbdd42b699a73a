"""One scoped channel for Mode Attention's pooling maps P (no state kept on the layers).

A caller that wants the maps opens :func:`record_mode_pooling` around a forward: the model's own
training forward does (the diversity loss needs them, with gradients), and so does ``explain``
(to draw them). Each Mode Attention hands its map to the innermost open record; with none open
(plain inference, torch.fx / ONNX tracing) handing it over does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class PoolingMap:
    """One block's pooling weights for one forward: ``weights`` is (B, G, h, w), rows sum to 1."""

    module: nn.Module
    weights: torch.Tensor


_OPEN: contextvars.ContextVar[list[PoolingMap] | None] = contextvars.ContextVar("mode_pooling", default=None)


@contextlib.contextmanager
def record_mode_pooling() -> Iterator[list[PoolingMap]]:
    """Collect the pooling map of every Mode Attention forward run inside the block, in order."""
    maps: list[PoolingMap] = []
    token = _OPEN.set(maps)
    try:
        yield maps
    finally:
        _OPEN.reset(token)


def hand_over(module: nn.Module, weights: torch.Tensor) -> None:
    """Called by Mode Attention: give ``weights`` to the open record, if any."""
    maps = _OPEN.get()
    if maps is not None:
        maps.append(PoolingMap(module, weights))
