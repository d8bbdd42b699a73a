"""What `pip install .` gives a user: every subpackage, and the shipped weights as package data,
so commands that need no --weights in the checkout need none after installing either."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reid_stra.models.shipped import models_with_shipped_weights

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "reid_stra").rglob("__init__.py")}
    assert listed == on_disk | {"reid_stra.weights"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation and no dependencies: built from this environment, no network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (found,) = out.glob("reid_stra-*.whl")
    return found


@pytest.mark.slow
def test_wheel_carries_the_shipped_weights_and_their_card(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "weights").iterdir() if p.suffix in (".pth", ".md"))
    assert shipped, "the checkout ships no weights"
    for name in shipped:
        assert f"reid_stra/weights/{name}" in names


@pytest.mark.slow
def test_installed_copy_extracts_without_weights(wheel: Path, synthetic_root: Path, tmp_path: Path) -> None:
    if not models_with_shipped_weights():
        pytest.skip("no shipped weights")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elsewhere = tmp_path / "user"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "REID_STRA_WEIGHTS_DIR"}
    env |= {"PYTHONPATH": str(target), "REID_STRA_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    script = (
        "import reid_stra, sys; from reid_stra.cli.app import main; "
        "print('package', reid_stra.__file__, file=sys.stderr); main()"
    )
    crops = synthetic_root / "query"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "extract",
            str(crops),
            "-o",
            "g.npy",
            "--height",
            "64",
            "--width",
            "32",
            "--workers",
            "0",
            "--device",
            "cpu",
        ],  # fmt: skip
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"package {target}" in result.stderr  # the installed copy ran, not the checkout
    assert (elsewhere / "g.npy").is_file()
    assert str(target / "reid_stra" / "weights") in (elsewhere / "g.json").read_text()
