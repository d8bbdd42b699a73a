"""Model zoo: StRA layers, backbones, heads, weights loading and complexity."""

from reid_stra.models.registry import list_models

__all__ = ["list_models"]
