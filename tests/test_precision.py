"""--precision: what auto picks and why, clear errors for impossible asks, bf16 features in the
fp32 space, and bf16 training that learns and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reid_stra.engine.trainer import plan_run, train
from reid_stra.errors import ReidError
from reid_stra.retrieval.features import load_features
from reid_stra.utils import precision as precision_module
from reid_stra.utils.precision import cpu_bf16_units, resolve_precision
from tests.helpers.training import last_weights, map_before_and_after_training, tiny_overrides

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(cpu_bf16_units() is None, reason="this CPU has no bf16 units")


@pytest.mark.parametrize(
    ("units", "training", "expected"),
    [("AMX", False, "fp32"), ("AMX", True, "bf16"), ("AVX512-BF16", False, "fp32"),
     ("AVX512-BF16", True, "bf16"), (None, False, "fp32"), (None, True, "fp32")],
)  # fmt: skip
def test_auto_picks_by_the_cpus_bf16_units_and_says_why(monkeypatch, units, training, expected) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: units)
    chosen = resolve_precision("auto", CPU, training=training)
    assert chosen.name == expected
    assert chosen.describe().startswith(f"precision {expected}: auto")
    assert (units or "no bf16 units") in chosen.reason


@pytest.mark.parametrize(
    ("flags", "amx_granted", "expected"),
    [({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True, "AMX"),
     ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, False, "AVX512-BF16"),
     ({"avx512f", "avx512_bf16"}, False, "AVX512-BF16"), ({"avx2", "fma"}, False, None)],
)  # fmt: skip
def test_bf16_units_come_from_the_cpu_flags_and_amx(monkeypatch, flags, amx_granted, expected) -> None:
    """A Sapphire Rapids CPU must be seen as AMX (torch 2.14 has no direct query for it)."""
    monkeypatch.setattr(precision_module, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(torch._C._cpu, "_init_amx", lambda: amx_granted)
    assert cpu_bf16_units() == expected


def test_impossible_asks_are_one_line_errors(monkeypatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_units", lambda: None)
    with pytest.raises(ReidError, match=r"--precision bf16: this CPU has no bf16 units.*--precision fp32"):
        resolve_precision("bf16", CPU)
    with pytest.raises(ReidError, match="--precision fp16: needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ReidError, match="precision"):
        resolve_precision("fp8", CPU)
    assert resolve_precision("fp32", CPU).dtype is None


def test_cli_rejects_a_bad_precision_before_loading_anything(
    cli, synthetic_root: Path, tmp_path: Path
) -> None:
    result = cli("extract", synthetic_root / "query", "-o", tmp_path / "f.npy", "--precision", "half")
    assert result.exit_code == 2 and "precision" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "f.npy").exists()


@needs_bf16
def test_bf16_extraction_is_in_the_fp32_space_and_recorded(cli, synthetic_root: Path, tmp_path: Path) -> None:
    args = ["--workers", "0", "--device", "cpu"]
    for name in ("fp32", "bf16"):
        result = cli(
            "extract", synthetic_root / "query", "-o", tmp_path / f"{name}.npy", "--precision", name, *args
        )
        assert result.exit_code == 0, result.stderr
        assert f"precision {name}" in result.stderr  # said once which arithmetic ran
    fp32, fp32_meta = load_features(tmp_path / "fp32.npy")
    bf16, bf16_meta = load_features(tmp_path / "bf16.npy")
    assert fp32_meta.precision == "fp32" and bf16_meta.precision == "bf16"
    assert bf16.dtype == np.float32
    # Both L2-normalized: bf16 moves the features (why auto infers in fp32) but keeps them in the
    # fp32 model's space, close enough to search one with the other.
    cosine = (fp32 * bf16).sum(1)
    assert cosine.min() >= 0.95 and cosine.mean() >= 0.99
    # a bf16 gallery is searchable with fp32 queries of the same model
    result = cli("search", synthetic_root / "query" / fp32_meta.paths[0].split("/")[-1], "--gallery",
                 tmp_path / "bf16.npy", "--precision", "fp32", *args)  # fmt: skip
    assert result.exit_code == 0, result.stderr


@needs_bf16
@pytest.mark.slow
def test_bf16_training_resumes_bit_identically(synthetic_root: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(synthetic_root, precision="bf16", eval_every=0)
    whole = train(plan_run(tmp_path / "whole", recipe="paper", overrides=overrides))
    assert whole["finished"]
    first = train(plan_run(tmp_path / "split", recipe="paper", overrides=overrides), stop_after_epochs=1)
    assert not first["finished"]
    assert train(plan_run(tmp_path / "split", resume=True))["finished"]
    a, b = last_weights(tmp_path / "whole"), last_weights(tmp_path / "split")
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, f"{len(different)} tensors differ after a bf16 resume, e.g. {different[:3]}"
    fp32 = train(plan_run(tmp_path / "fp32", recipe="paper", overrides={**overrides, "precision": "fp32"}))
    assert any(not torch.equal(a[key], last_weights(tmp_path / "fp32")[key]) for key in a)  # bf16 really ran
    assert fp32["finished"]


@needs_bf16
@pytest.mark.slow
def test_bf16_training_learns(shared_dir: Path, tmp_path: Path) -> None:
    """ImageNet-initialized MobileNetV2 in bf16 learns the synthetic identities (as fp32 does)."""
    before, after = map_before_and_after_training(shared_dir, tmp_path, precision="bf16")
    assert after > before + 0.25 and after > 0.45, (before, after)
