"""The feature-file format: what is saved comes back, and anything inconsistent is refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reid_stra.errors import ReidError
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.features import (
    FeatureMeta,
    check_compatible,
    load_features,
    load_meta,
    save_features,
    sidecar_path,
)

INFO = {
    "model": "mobilenetv2",
    "weights": "/models/w.pth",
    "weights_sha256": "ab" * 32,
    "cfg": PretrainedCfg(
        "mobilenetv2",
        input_size=(256, 128),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        embedding_dim=8,
    ),
}


def _meta(count: int, **changes) -> FeatureMeta:
    meta = FeatureMeta.from_model_info(INFO, [f"/data/{i:04d}_c1s1_000001_01.jpg" for i in range(count)])
    for key, value in changes.items():
        setattr(meta, key, value)
    return meta


def _saved(tmp_path, count: int = 5, dim: int = 8, seed: int = 0):
    feats = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    path = tmp_path / "feats.npy"
    save_features(path, feats, _meta(count, pids=list(range(count)), camids=[1] * count))
    return path, feats


def test_round_trip_keeps_array_and_describes_it(tmp_path) -> None:
    path, feats = _saved(tmp_path)
    loaded, meta = load_features(path)
    np.testing.assert_array_equal(loaded, feats)
    assert loaded.dtype == np.float32
    side = json.loads(sidecar_path(path).read_text())
    assert side["format"] == "reid-stra-features"
    assert side["count"] == 5 and side["embedding_dim"] == 8
    for key in ("paths", "pids", "camids", "model", "weights_sha256", "input_size", "mean", "std"):
        assert key in side
    assert side["tool_version"] and side["created"] and side["checksum"].startswith("sha256:")
    assert meta.pids == [0, 1, 2, 3, 4] and meta.model == "mobilenetv2"
    # Either half of the pair names the feature file.
    assert load_features(tmp_path / "feats.json")[0].shape == (5, 8)


def test_memory_mapped_load_matches(tmp_path) -> None:
    path, feats = _saved(tmp_path)
    loaded, _ = load_features(path, mmap=True)
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(np.asarray(loaded), feats)


def test_missing_sidecar_says_how_to_regenerate(tmp_path) -> None:
    path, _ = _saved(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(ReidError, match=r"sidecar .* missing.*reid-stra extract"):
        load_features(path)


def test_missing_features_file(tmp_path) -> None:
    with pytest.raises(ReidError, match="not found"):
        load_features(tmp_path / "nothing.npy")


def test_not_npy_suffix_is_refused(tmp_path) -> None:
    with pytest.raises(ReidError, match=r"\.npy"):
        load_features(tmp_path / "feats.bin")


def test_sidecar_from_another_run_is_detected(tmp_path) -> None:
    path, _ = _saved(tmp_path, seed=0)
    old_sidecar = sidecar_path(path).read_text()
    _saved(tmp_path, seed=1)  # same shape, other values
    sidecar_path(path).write_text(old_sidecar)
    with pytest.raises(ReidError, match="checksum"):
        load_features(path)


def test_sidecar_disagreeing_on_count(tmp_path) -> None:
    path, feats = _saved(tmp_path)
    np.save(path, feats[:3])
    with pytest.raises(ReidError, match=r"3x8 but its sidecar describes 5x8"):
        load_features(path)


def test_truncated_npy(tmp_path) -> None:
    path, _ = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 17])
    for mmap in (False, True):
        with pytest.raises(ReidError, match="truncated"):
            load_features(path, mmap=mmap)


def test_wrong_dtype_and_shape(tmp_path) -> None:
    path, feats = _saved(tmp_path)
    np.save(path, feats.astype(np.float64))
    with pytest.raises(ReidError, match="float32"):
        load_features(path)
    np.save(path, feats.reshape(-1))
    with pytest.raises(ReidError, match="2-D"):
        load_features(path)


def test_nan_rows_are_named(tmp_path) -> None:
    path, feats = _saved(tmp_path)
    feats[1, 0] = np.nan
    feats[3, 2] = np.inf
    with pytest.raises(ReidError, match=r"rows 1, 3"):
        save_features(path, feats, _meta(5))
    # A file corrupted after saving is caught on load too.
    good, _ = _saved(tmp_path)
    meta = load_meta(good)
    np.save(good, feats)
    from reid_stra.retrieval.features import array_checksum

    side = json.loads(sidecar_path(good).read_text())
    side["checksum"] = array_checksum(feats)
    sidecar_path(good).write_text(json.dumps(side))
    assert meta.count == 5
    with pytest.raises(ReidError, match=r"NaN/inf values in rows 1, 3"):
        load_features(good)


def test_save_checks_lengths(tmp_path) -> None:
    feats = np.zeros((4, 8), np.float32)
    with pytest.raises(ReidError, match="4 feature rows but 5 image paths"):
        save_features(tmp_path / "f.npy", feats, _meta(5))
    with pytest.raises(ReidError, match="pids"):
        save_features(tmp_path / "f.npy", feats, _meta(4, pids=[1, 2]))


def test_unknown_sidecar_format(tmp_path) -> None:
    path, _ = _saved(tmp_path)
    sidecar_path(path).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ReidError, match="not a reid-stra feature sidecar"):
        load_features(path)
    sidecar_path(path).write_text("{not json")
    with pytest.raises(ReidError, match="unreadable sidecar"):
        load_features(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding_dim": 16}, "embedding dimension"),
        ({"model": "resnet50"}, "model"),
        ({"weights_sha256": "cd" * 32}, "source weights checksum"),  # PyTorch features of other weights
        ({"backend": "onnxruntime", "source_weights_sha256": "cd" * 32}, "source weights checksum"),
        ({"backend": "onnxruntime", "weights_sha256": "cd" * 32, "source_weights_sha256": None}, "checksum"),
        ({"normalized": False}, "L2 normalization"),
        ({"input_size": [128, 64]}, "input size"),
        ({"mean": [0.5, 0.5, 0.5]}, "pixel mean"),
    ],
)
def test_incompatible_features_are_refused(change, message) -> None:
    gallery = _meta(3, embedding_dim=8)
    query = _meta(2, **{"embedding_dim": 8, **change})
    with pytest.raises(ReidError, match=message):
        check_compatible(query, gallery, "q.npy", "g.npy")


def test_flip_difference_is_allowed() -> None:
    check_compatible(_meta(2, flip=True), _meta(3, flip=False), "q.npy", "g.npy")


def test_streamed_save_writes_the_same_file_one_block_at_a_time(tmp_path) -> None:
    """Issue 27, item 2: the final write of a large gallery streams blocks (never the whole array)
    and gives byte for byte the file and checksum of the in-memory write, which search reads."""
    from reid_stra.retrieval.features import save_features_streamed

    feats = np.random.default_rng(3).standard_normal((1000, 8)).astype(np.float32)
    whole = tmp_path / "whole.npy"
    save_features(whole, feats, _meta(1000))
    yielded: list[int] = []

    def blocks():
        for start in range(0, 1000, 300):
            yielded.append(start)
            yield feats[start : start + 300]

    streamed = tmp_path / "streamed.npy"
    meta = save_features_streamed(streamed, blocks, 1000, 8, _meta(1000))
    assert yielded == [0, 300, 600, 900] and meta.checksum == load_meta(whole).checksum
    assert streamed.read_bytes() == whole.read_bytes()
    np.testing.assert_array_equal(load_features(streamed)[0], feats)

    def bad_blocks():
        yield feats[:500]
        yield np.full((500, 8), np.nan, np.float32)

    broken = tmp_path / "broken.npy"
    with pytest.raises(ReidError, match=r"NaN/inf in rows 500"):
        save_features_streamed(broken, bad_blocks, 1000, 8, _meta(1000))
    with pytest.raises(ReidError, match="999 feature rows written, 1000 expected"):
        save_features_streamed(broken, lambda: iter([feats[:999]]), 1000, 8, _meta(1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["whole.npy", "whole.json", "streamed.npy", "streamed.json"]
    )  # a failed write leaves nothing behind


_BOUNDED_WRITE = """
import resource, sys
import numpy as np
from reid_stra.retrieval.features import FeatureMeta, save_features_streamed

rows, blocks, dim = 16384, 30, 256  # 480 MiB of features, more than the address space allowed
limit = int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
if sys.argv[3] == "in memory":  # what a merge that concatenates would need
    np.concatenate([np.full((rows, dim), b, np.float32) for b in range(blocks)])
else:
    meta = FeatureMeta(paths=[f"{i}.jpg" for i in range(rows * blocks)])
    blocks_of = lambda: (np.full((rows, dim), b, np.float32) for b in range(blocks))
    save_features_streamed(sys.argv[2], blocks_of, rows * blocks, dim, meta)
print("written")
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="RLIMIT_AS is a POSIX limit")
def test_the_streamed_write_fits_in_less_memory_than_the_gallery(tmp_path) -> None:
    """The final write of `extract` holds one block at a time: a 480 MiB gallery is written under a
    350 MiB address-space limit, under which holding the array in memory fails."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "big.npy"

    def run(how: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-c", _BOUNDED_WRITE, "350", str(out), how]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)

    held = run("in memory")
    assert held.returncode != 0 and "MemoryError" in held.stderr  # the limit binds
    streamed = run("streamed")
    assert streamed.returncode == 0 and "written" in streamed.stdout, streamed.stderr[-800:]
    array = np.load(out, mmap_mode="r")
    assert array.shape == (16384 * 30, 256) and float(array[-1, 0]) == 29.0
    assert load_features(out, mmap=True)[1].count == 16384 * 30
