"""Model registry (timm style): ``@register_model`` on a factory makes it buildable by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from reid_stra.utils.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a model before building it."""

    name: str
    factory: Callable[..., nn.Module]
    description: str = ""
    # The paper's numbers for this model, shown beside ours by `reid-stra models`.
    paper: dict[str, Any] = field(default_factory=dict)


_REGISTRY: Registry[ModelEntry] = Registry("model")


def register_model(
    name: str, *, description: str = "", paper: dict[str, Any] | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY.add(name, ModelEntry(name, factory, description, dict(paper or {})))
        return factory

    return decorator


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    return _REGISTRY.get(name)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _ensure_loaded()
    return _REGISTRY.names()


def _ensure_loaded() -> None:
    # Importing the package registers every model family.
    import reid_stra.models  # noqa: F401
