"""Fixtures of the robustness suite (its helpers live in tests/helpers/robust.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.robust import SIZE


@pytest.fixture(scope="session")
def gallery_features(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Features of the synthetic gallery from the shipped default model (read-only: copy to modify)."""
    from reid_stra.cli.app import run

    out = tmp_path_factory.mktemp("gallery") / "gallery.npy"
    code = run(["extract", str(synthetic_root / "bounding_box_test"), "-o", str(out), *SIZE])
    assert code == 0
    return out
