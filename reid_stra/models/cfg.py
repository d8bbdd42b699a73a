"""The one description of how to feed a model and rebuild it (timm's ``PretrainedCfg``).

``build_model`` attaches it as ``model.pretrained_cfg``; ``save_weights`` and the trainer write it
with the weights (under the file key ``default_cfg``, which older files also use); ``load_model``
reads it back; extraction, feature sidecars and exports take their input size, mean and std from
it. It is frozen: a new input size is a new cfg (``cfg.replace(input_size=...)``), never an edit
of a model that others already hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class PretrainedCfg:
    """Model name and options, the input it expects (size, mean, std) and the embedding it returns."""

    name: str
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    embedding_dim: int = 0
    # Every factory option, defaults included, so a checkpoint rebuilds this architecture even
    # after a default changes (stra_mobilenetv2's StRA placement did).
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def replace(self, **changes: Any) -> PretrainedCfg:
        return dataclasses.replace(self, **_normalized(changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain containers (lists, dicts) only, so files holding it load with ``weights_only``."""
        return {
            "name": self.name,
            "input_size": [int(v) for v in self.input_size],
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "embedding_dim": int(self.embedding_dim),
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PretrainedCfg:
        """Read ``to_dict``'s output (or an older file's ``default_cfg``); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**_normalized({k: v for k, v in data.items() if k in known}))


def _normalized(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tuples where the cfg holds tuples, so a cfg read from a file equals the one it was made from."""
    out = dict(values)
    if "input_size" in out:
        out["input_size"] = tuple(int(v) for v in out["input_size"])
    for key in ("mean", "std"):
        if key in out:
            out[key] = tuple(float(v) for v in out[key])
    if "embedding_dim" in out:
        out["embedding_dim"] = int(out["embedding_dim"] or 0)
    if "kwargs" in out:
        out["kwargs"] = dict(out["kwargs"] or {})
    return out
