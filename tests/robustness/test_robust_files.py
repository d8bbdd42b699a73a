"""Damaged feature files and checkpoints from strangers: refused with a clear error, never run."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_stra.retrieval.features import array_checksum
from tests.helpers.robust import SIZE, assert_clean_error, copy_features, debris


def _rewrite_sidecar(path: Path, **changes) -> None:
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **changes}))


def _damage(kind: str, path: Path) -> None:
    array = np.load(path)
    if kind == "wrong-shape":
        np.save(path, array.reshape(-1))
    elif kind == "nan-rows":  # consistent sidecar: only the NaN check can catch it
        array[2, 5], array[4, 0] = np.nan, np.inf
        np.save(path, array)
        _rewrite_sidecar(path, checksum=array_checksum(array))
    elif kind == "sidecar-missing":
        path.with_suffix(".json").unlink()
    elif kind == "sidecar-disagrees":
        np.save(path, array[:-1])
    elif kind == "array-replaced":
        np.save(path, array[::-1].copy())
    elif kind == "truncated-npy":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "pickled-npy":
        np.save(path, np.array([{"rows": 1}], dtype=object), allow_pickle=True)
    elif kind == "sidecar-garbage":
        path.with_suffix(".json").write_text("{not json")


DAMAGE = [
    "wrong-shape",
    "nan-rows",
    "sidecar-missing",
    "sidecar-disagrees",
    "array-replaced",
    "truncated-npy",
    "pickled-npy",
    "sidecar-garbage",
]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_feature_file(cli, gallery_features: Path, tmp_path: Path, kind: str) -> None:
    damaged = copy_features(gallery_features, tmp_path / "gallery.npy")
    _damage(kind, damaged)
    built = cli("index", "build", damaged, "--kind", "hnsw")
    assert_clean_error(built, "gallery.")
    assert not (tmp_path / "gallery.faiss").exists() and debris(tmp_path) == []
    searched = cli("search", "--query-features", gallery_features, "--gallery", damaged)
    assert_clean_error(searched, "gallery.")


def test_features_of_another_model_are_not_mixed(cli, gallery_features: Path, tmp_path: Path) -> None:
    other = copy_features(gallery_features, tmp_path / "other.npy")
    _rewrite_sidecar(other, model="mobilenetv2", weights_sha256="ab" * 32)
    result = cli("search", "--query-features", other, "--gallery", gallery_features)
    assert_clean_error(result, str(other), "model", "re-extract")
    result = cli("evaluate", "--query-features", other, "--gallery-features", gallery_features)
    assert_clean_error(result, "model")


class _RunsCode:
    """A pickle payload that would create a marker file if it were ever unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from reid_stra.models import build_model

    folder = tmp_path_factory.mktemp("checkpoints")
    files = {
        name: folder / name for name in ("other-arch", "partial", "code", "code-pkl", "plain", "torchreid")
    }
    torch.save(build_model("resnet50").state_dict(), files["other-arch"])
    shipped = sorted(Path(__file__).resolve().parents[2].glob("weights/stra_mobilenetv2*.pth"))[0]
    data = shipped.read_bytes()
    files["partial"].write_bytes(data[: len(data) // 3])
    torch.save({"state_dict": _RunsCode(folder / "PWNED")}, files["code"])
    files["code-pkl"].write_bytes(pickle.dumps({"state_dict": _RunsCode(folder / "PWNED")}))
    state = build_model("mobilenetv2", num_classes=7).state_dict()
    torch.save(state, files["plain"])
    torchreid = {"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 60, "rank1": 0.9}
    torch.save(torchreid, files["torchreid"])
    return files


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("other-arch", "another architecture"),
        ("partial", "truncated"),
        ("code", "refused"),
        ("code-pkl", "refused"),
    ],
)
def test_bad_checkpoint_is_refused(
    cli, checkpoints, synthetic_root: Path, tmp_path: Path, kind, expected
) -> None:
    path = checkpoints[kind]
    out = tmp_path / "feats.npy"
    result = cli(
        "extract", synthetic_root / "query", "-o", out, "--model", "stra_mobilenetv2", "--weights", path
    )
    assert_clean_error(result, str(path), expected)
    assert not (path.parent / "PWNED").exists(), "a checkpoint ran code while loading"
    assert not out.exists() and debris(tmp_path) == []


def test_torchreid_and_plain_state_dicts_load_to_the_same_model(
    cli, checkpoints, synthetic_root: Path, tmp_path: Path
) -> None:
    outputs = []
    for kind in ("plain", "torchreid"):
        out = tmp_path / f"{kind}.npy"
        args = ["--model", "mobilenetv2", "--weights", checkpoints[kind], *SIZE]
        result = cli("extract", *sorted((synthetic_root / "query").glob("*.jpg"))[:4], "-o", out, *args)
        assert result.exit_code == 0, result.stderr
        outputs.append(np.load(out))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    missing = cli(
        "extract", synthetic_root / "query", "-o", tmp_path / "x.npy", "--weights", checkpoints["plain"]
    )
    assert_clean_error(missing, "--model")
