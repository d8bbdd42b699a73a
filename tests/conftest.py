"""Shared test fixtures: CLI runner, the ../shared reference folder, small synthetic data."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("REID_STRA_NO_PROGRESS", "1")
# `--backend auto` exports each weights file once into a cache: one per test session, never the
# user's ~/.cache (subprocesses of the tests inherit it).
_CACHE = tempfile.mkdtemp(prefix="reid-stra-test-cache-")
os.environ["REID_STRA_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _limit_threads() -> None:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder; tests needing it skip where it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (only CI and developer machines have it)")
    return SHARED


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``reid-stra ARGS...`` in-process and return exit code, stdout and stderr."""
    from reid_stra.cli.app import run

    def invoke(*args: str | os.PathLike) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Market-1501-layout dataset (8 train ids, 6 test ids, 3 cameras).

    Layout: bounding_box_train/ 8 ids x 3 cameras x 2 images = 48; query/ 6 x 3 = 18;
    bounding_box_test/ 6 x 3 x 1 = 18 + 3 distractors (0000) + 2 junk (-1). Session-scoped and
    read-only by convention: copy it before modifying.
    """
    from reid_stra.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic") / "market",
        num_train_ids=8,
        num_test_ids=6,
        cameras=3,
        images_per_id_cam=2,
        seed=0,
    )


def _calibrated_checkpoint(path: Path, seed: int, input_size: tuple[int, int] | None = None) -> Path:
    """A mobilenetv2 checkpoint whose BatchNorm statistics are calibrated (random init gives ~0
    outputs); ``input_size`` is recorded as the size it is fed at (default: the model's)."""
    import torch

    from reid_stra.models import build_model, save_weights

    torch.manual_seed(seed)
    model = build_model("mobilenetv2")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass sets the statistics
    with torch.no_grad():
        model.train()(torch.rand(8, 3, 64, 32))
    if input_size is not None:
        model.pretrained_cfg = model.pretrained_cfg.replace(input_size=input_size)
    save_weights(model.eval(), path)
    return path


@pytest.fixture(scope="session")
def calibrated_checkpoint():
    """``calibrated_checkpoint(path, seed, input_size=None) -> path``: small real-looking weights."""
    return _calibrated_checkpoint
