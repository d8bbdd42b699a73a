"""Extraction: features equal a direct forward pass, bad images are named, --resume redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import reid_stra.data.loading as loading
import reid_stra.retrieval.extract as extract_module
from reid_stra.data.images import read_image
from reid_stra.data.transforms import build_eval_transform
from reid_stra.errors import ReidError
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.extract import extract, extract_features
from reid_stra.retrieval.extract_file import extract_to_file, partial_dir
from reid_stra.retrieval.features import load_features
from reid_stra.utils.atomic import exclusive_lock

SIZE = (32, 16)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TinyNet(nn.Module):
    """Conv-BN-ReLU-pool-linear: small, but with a BatchNorm to fold and non-trivial statistics."""

    def __init__(self, dim: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, dim)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


INFO = {
    "model": "tinynet",
    "weights": "/w/tiny.pth",
    "weights_sha256": "00" * 32,
    "cfg": PretrainedCfg("tinynet", input_size=SIZE, mean=MEAN, std=STD, embedding_dim=12),
}


def _images(folder: Path, count: int, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, size=(24 + i % 5, 12 + i % 3, 3), dtype=np.uint8)
        path = folder / f"{i // 2 + 1:04d}_c{i % 3 + 1}s1_{i:06d}_01.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return sorted(paths)


@pytest.fixture
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


def _direct(model: nn.Module, paths: list[str]) -> np.ndarray:
    transform = build_eval_transform(SIZE, MEAN, STD)
    with torch.no_grad():
        return model(torch.stack([transform(read_image(p)) for p in paths])).numpy()


@pytest.mark.parametrize("workers", [0, 2])
def test_features_equal_direct_forward(tmp_path: Path, model: TinyNet, workers: int) -> None:
    paths = _images(tmp_path / "img", 7)
    feats = extract_features(model, paths, batch_size=3, workers=workers, input_size=SIZE, progress=False)
    assert feats.shape == (7, 12) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, _direct(model, paths), rtol=1e-4, atol=1e-5)


def test_normalize_and_flip(tmp_path: Path, model: TinyNet) -> None:
    paths = _images(tmp_path / "img", 4)
    feats = extract_features(
        model, paths, workers=0, input_size=SIZE, flip=True, normalize=True, progress=False
    )
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    mirrored = []
    for path in paths:
        mirror = tmp_path / ("m_" + Path(path).name.replace(".jpg", ".png"))
        read_image(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirror)
        mirrored.append(str(mirror))
    # PNG keeps the decoded JPEG pixels exactly, so the mirror's features are comparable.
    expected = (_direct(model, paths) + _direct(model, mirrored)) / 2
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_model_mode_is_restored(tmp_path: Path, model: TinyNet) -> None:
    model.train()
    extract_features(model, _images(tmp_path / "img", 2), workers=0, input_size=SIZE, progress=False)
    assert model.training
    assert model.conv.weight.is_contiguous()  # the caller's weights keep their layout


def test_bad_images_are_reported_by_path(tmp_path: Path, model: TinyNet) -> None:
    paths = _images(tmp_path / "img", 5)
    broken = tmp_path / "img" / "0009_c1s1_000009_01.jpg"
    broken.write_bytes(b"not a jpeg")
    missing = str(tmp_path / "img" / "0010_c1s1_000010_01.jpg")
    all_paths = sorted([*paths, str(broken), missing])
    with pytest.raises(
        ReidError, match=r"2 unreadable image\(s\): .*0009_c1s1_000009_01\.jpg.*0010_c1s1"
    ) as err:
        extract_features(model, all_paths, workers=2, batch_size=2, input_size=SIZE, progress=False)
    assert "--skip-bad" in str(err.value)
    result = extract(
        model,
        all_paths,
        extract_module.Preprocess(SIZE, MEAN, STD),
        batch_size=2,
        workers=0,
        skip_bad=True,
        progress=False,
    )
    assert [all_paths[i] for i in result.kept] == paths
    assert sorted(p for p, _ in result.failures) == sorted([str(broken), missing])
    np.testing.assert_allclose(result.features, _direct(model, paths), rtol=1e-4, atol=1e-5)


def test_extract_to_file_writes_features_and_sidecar(tmp_path: Path, model: TinyNet) -> None:
    paths = _images(tmp_path / "img", 6)
    out = tmp_path / "out" / "feats.npy"
    summary = extract_to_file(model, INFO, paths, out, workers=0, batch_size=4, progress=False)
    feats, meta = load_features(out)
    expected = _direct(model, paths)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)
    assert meta.paths == paths and meta.normalized and not meta.flip
    assert meta.pids == [1, 1, 2, 2, 3, 3] and meta.camids == [1, 2, 1, 3, 2, 3]
    assert meta.model == "tinynet" and meta.weights_sha256 == INFO["weights_sha256"]
    assert meta.input_size == list(SIZE) and meta.mean == list(MEAN)
    assert summary.extracted == 6 and summary.reused == 0
    assert not partial_dir(out).exists()


class _Interrupt(Exception):
    pass


def test_resume_reuses_finished_chunks(tmp_path: Path, model: TinyNet, monkeypatch) -> None:
    paths = _images(tmp_path / "img", 10)
    out = tmp_path / "feats.npy"
    decoded: list[str] = []
    real_read = loading.read_image

    def counting_read(path):
        decoded.append(str(path))
        if interrupt_after is not None and len(decoded) > interrupt_after:
            raise _Interrupt("simulated Ctrl+C")
        return real_read(path)

    monkeypatch.setattr(loading, "read_image", counting_read)  # the one decoder extraction uses
    options = {"workers": 0, "batch_size": 2, "chunk_size": 4, "progress": False}
    interrupt_after = 5  # dies inside the second chunk: only chunk 0 (images 0-3) is finished
    with pytest.raises(_Interrupt):
        extract_to_file(model, INFO, paths, out, **options)
    assert not out.exists()
    assert sorted(p.name for p in partial_dir(out).glob("chunk_*.json")) == ["chunk_000000000.json"]

    decoded.clear()
    interrupt_after = None
    notes: list[str] = []
    summary = extract_to_file(model, INFO, paths, out, resume=True, notice=notes.append, **options)
    assert decoded == paths[4:]  # finished images are not decoded (or run through the model) again
    assert summary.reused == 4 and summary.extracted == 6
    assert any("resuming" in note for note in notes)
    resumed, _ = load_features(out)

    fresh = tmp_path / "fresh.npy"
    extract_to_file(model, INFO, paths, fresh, **options)
    np.testing.assert_array_equal(resumed, load_features(fresh)[0])
    assert not partial_dir(out).exists()


def test_resume_refuses_other_inputs_or_model(tmp_path: Path, model: TinyNet, monkeypatch) -> None:
    paths = _images(tmp_path / "img", 6)
    out = tmp_path / "feats.npy"

    def failing_save(*args, **kwargs):
        raise _Interrupt("killed before the final write")

    import reid_stra.retrieval.extract_file as extract_file

    monkeypatch.setattr(extract_file, "save_features_streamed", failing_save)
    with pytest.raises(_Interrupt):
        extract_to_file(model, INFO, paths, out, workers=0, chunk_size=4, progress=False)
    monkeypatch.undo()
    with pytest.raises(ReidError, match="--resume: .* different input image list"):
        extract_to_file(model, INFO, paths[:5] + [paths[4]], out, resume=True, workers=0, chunk_size=4)
    other = {**INFO, "weights_sha256": "11" * 32}
    with pytest.raises(ReidError, match="different model weights"):
        extract_to_file(model, other, paths, out, resume=True, workers=0, chunk_size=4, progress=False)
    with pytest.raises(ReidError, match="different --flip"):
        extract_to_file(model, INFO, paths, out, resume=True, flip=True, workers=0, chunk_size=4)
    # Without --resume the stale partial work is discarded (with a notice) and the run completes.
    notes: list[str] = []
    extract_to_file(model, other, paths, out, workers=0, chunk_size=4, progress=False, notice=notes.append)
    assert any("discarding" in note for note in notes)
    assert load_features(out)[1].weights_sha256 == other["weights_sha256"]


def test_resume_with_corrupt_manifest_is_refused(tmp_path: Path, model: TinyNet) -> None:
    out = tmp_path / "feats.npy"
    partial_dir(out).mkdir()
    (partial_dir(out) / "manifest.json").write_text("{oops")
    with pytest.raises(ReidError, match="no readable manifest"):
        extract_to_file(model, INFO, _images(tmp_path / "img", 2), out, resume=True, workers=0)


def test_skipped_images_are_listed_in_sidecar(tmp_path: Path, model: TinyNet) -> None:
    paths = _images(tmp_path / "img", 3)
    bad = tmp_path / "img" / "0007_c1s1_000007_01.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "feats.npy"
    extract_to_file(model, INFO, sorted([*paths, str(bad)]), out, skip_bad=True, workers=0, progress=False)
    feats, meta = load_features(out)
    assert feats.shape[0] == 3 and meta.paths == paths
    side = json.loads(out.with_suffix(".json").read_text())
    assert [s["path"] for s in side["skipped"]] == [str(bad)]


def test_concurrent_extraction_into_same_file_fails_clearly(tmp_path: Path, model: TinyNet) -> None:
    out = tmp_path / "feats.npy"
    with exclusive_lock(out), pytest.raises(ReidError, match="being written by another"):
        extract_to_file(model, INFO, _images(tmp_path / "img", 2), out, workers=0, progress=False)


def test_uint8_until_the_batch_is_the_same_arithmetic_as_the_eval_transform(tmp_path: Path) -> None:
    """Extraction and the Embedder resize each crop to uint8 and normalize whole batches; the
    result must be the eval transform's, bit for bit, whatever the crop's size."""
    from PIL import Image

    from reid_stra.data.transforms import normalize_batch, resize_to_uint8

    rng = np.random.default_rng(0)
    crops = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in ((128, 64), (37, 91), (300, 120), (8, 8))
    ]
    transform = build_eval_transform(SIZE, MEAN, STD)
    expected = torch.stack([transform(crop) for crop in crops])
    got = normalize_batch(torch.stack([resize_to_uint8(crop, SIZE) for crop in crops]), MEAN, STD)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
