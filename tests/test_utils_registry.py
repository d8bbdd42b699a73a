"""The one registry behind models and datasets: duplicates refused, unknown names suggested."""

from __future__ import annotations

import pytest

from reid_stra.data.datasets import list_datasets, register_dataset
from reid_stra.errors import ReidError
from reid_stra.models.registry import register_model
from reid_stra.utils.registry import Registry


def test_registry_refuses_duplicates_and_suggests_names() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("alpha", 1)
    with pytest.raises(ValueError, match="widget 'alpha' registered twice"):
        registry.add("alpha", 2)
    assert registry.get("alpha") == 1 and registry.names() == ["alpha"] and "alpha" in registry
    with pytest.raises(ReidError, match="unknown widget 'alpa' \\(did you mean 'alpha'\\?\\)"):
        registry.get("alpa")


def test_a_second_dataset_or_model_of_a_known_name_is_refused() -> None:
    """The dataset registry once replaced an existing reader silently."""
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("market1501", "again", "layout")(lambda root: None)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("mobilenetv2")(lambda: None)
    assert "market1501" in list_datasets()
