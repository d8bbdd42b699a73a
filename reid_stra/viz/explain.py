"""`reid-stra explain` as one library call: the pooling maps of a model's StRA blocks on crops,
drawn as figures (the command and the demo both run this)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from reid_stra.data.images import read_image
from reid_stra.errors import ReidError
from reid_stra.models.introspect import compute_mode_maps
from reid_stra.viz.modes import save_mode_figures, summarize_modes


@dataclass
class Explanation:
    """The figures written, the maps they draw (block -> (N, G, h, w)) and per-mode statistics."""

    figures: list[Path]
    maps: dict[str, np.ndarray]
    summary: list[dict]


def explain_modes(
    model: nn.Module,
    info: dict[str, Any],
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    block: str | None = None,
    precision: str = "fp32",
) -> Explanation:
    """Draw each StRA mode's pooling weights over the crops at ``paths`` into ``out`` (PNG; one
    figure per crop when there are several). ``model`` and ``info`` as ``load_model`` returns them;
    ``block`` draws one block (``"last"``: the deepest), by default every block."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ReidError(f"{out}: the mode figures are PNG files; give a name ending in .png")
    cfg = info["cfg"]
    crops = [read_image(path) for path in paths]
    maps = compute_mode_maps(
        model,
        crops,
        input_size=cfg.input_size,
        mean=cfg.mean,
        std=cfg.std,
        device=next(model.parameters()).device,
        precision=precision,
    )
    if block is not None:
        name = list(maps)[-1] if block == "last" else block
        if name not in maps:
            raise ReidError(
                f"block {block}: not a StRA block of {info['model']}; choose from {', '.join(maps)}"
            )
        maps = {name: maps[name]}
    height, width = cfg.input_size
    titles = [Path(p).name for p in paths]
    figures = save_mode_figures(crops, maps, out, titles=titles, aspect=(height, width))
    return Explanation(figures, maps, summarize_modes(maps))
