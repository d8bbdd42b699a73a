"""reid_stra.Embedder: the Python way to embed crops gives extract's features for every input
kind, applies the model's own preprocessing, and fails in one line on bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reid_stra
from reid_stra.errors import ReidError
from reid_stra.models.shipped import models_with_shipped_weights
from reid_stra.retrieval.features import load_features

pytestmark = pytest.mark.skipif(not models_with_shipped_weights(), reason="no shipped weights")


@pytest.fixture(scope="module")
def embedder() -> reid_stra.Embedder:
    return reid_stra.Embedder(device="cpu")


@pytest.fixture(scope="module")
def crops(synthetic_root: Path) -> list[Path]:
    return sorted((synthetic_root / "query").glob("*.jpg"))[:7]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def test_every_input_kind_gives_the_features_of_extract(cli, embedder, crops, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in crops))
    result = cli("extract", listing, "-o", tmp_path / "f.npy", "--workers", "0", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    expected, meta = load_features(tmp_path / "f.npy")
    assert meta.paths == [str(p) for p in crops]

    rgb = [np.asarray(Image.open(p).convert("RGB")) for p in crops]
    kinds = {
        "paths": embedder.embed(crops),
        "str paths": embedder.embed([str(p) for p in crops]),
        "PIL": embedder.embed([Image.open(p) for p in crops]),
        "numpy RGB": embedder.embed(rgb),
        "numpy BGR": embedder.embed([a[:, :, ::-1] for a in rgb], bgr=True),
        "uint8 tensor": embedder.embed(
            torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1) for a in rgb])
        ),
    }
    for kind, got in kinds.items():
        assert got.dtype == np.float32 and got.shape == expected.shape, kind
        assert _cosines(got, expected).min() >= 0.99999, kind
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_forgetting_bgr_changes_the_embedding(embedder, crops) -> None:
    """The colour order matters (so the flag is not a no-op)."""
    rgb = [np.asarray(Image.open(p).convert("RGB")) for p in crops]
    assert _cosines(embedder.embed(rgb), embedder.embed(rgb, bgr=True)).min() < 0.999


def test_float_tensor_batch_in_0_1_is_close_to_uint8(embedder, crops) -> None:
    batch = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in crops]
    )
    assert _cosines(embedder.embed(batch.float() / 255), embedder.embed(batch)).min() > 0.99


def test_batches_do_not_change_results(crops) -> None:
    one = reid_stra.Embedder(device="cpu", batch_size=1).embed(crops)
    many = reid_stra.Embedder(device="cpu", batch_size=64).embed(crops)
    assert _cosines(one, many).min() >= 0.99999
    assert _cosines(one[:1], one[1:2])[0] < 0.999  # different images, different features


def test_predict_follows_deep_sorts_embedder_contract(embedder, crops) -> None:
    bgr = [np.asarray(Image.open(p).convert("RGB"))[:, :, ::-1] for p in crops]
    embeds = embedder.predict(bgr)
    assert isinstance(embeds, list) and len(embeds) == len(crops)
    assert all(e.shape == (embedder.dim,) and e.dtype == np.float32 for e in embeds)
    np.testing.assert_allclose(np.stack(embeds), embedder.embed(bgr, bgr=True), atol=1e-6)


def test_unnormalized_embeddings_are_raw_features(crops) -> None:
    raw = reid_stra.Embedder(device="cpu", normalize=False).embed(crops)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 0.1


@pytest.mark.parametrize(
    ("crops", "message"),
    [
        ([np.zeros((64, 32, 3), dtype=np.float64)], "crop 0 is a float64 array"),
        ([np.zeros((64, 32), dtype=np.uint8)], "crop 0 has shape (64, 32)"),
        ([np.zeros((64, 32, 4), dtype=np.uint8)], "crop 0 has shape (64, 32, 4)"),
        ([np.zeros((0, 32, 3), dtype=np.uint8)], "crop 0 is empty"),
        (np.zeros((64, 32, 3), dtype=np.uint8), "pass a list of crops"),
        ([42], "crop 0 is a int"),
        (torch.zeros(2, 1, 64, 32), "N x 3 x H x W"),
        (torch.zeros(2, 3, 64, 32, dtype=torch.int32), "uint8 or float"),
        (torch.full((2, 3, 64, 32), 2.0), "values in [0, 1]"),
        (["/no/such/crop.jpg"], "/no/such/crop.jpg: file not found"),
    ],
)
def test_bad_input_is_one_clear_error(embedder, crops, message: str) -> None:
    with pytest.raises(ReidError) as error:
        embedder.embed(crops)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_readmes_embedding_snippet_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("### Python API")[1].split("```python\n")[1].split("```")[0]
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(tmp_path / "frame.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["features"].shape == (2, namespace["embedder"].dim)


def _readme_snippets() -> tuple[str, str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Python API")[1]
    blocks = [part.split("```")[0] for part in section.split("```python\n")[1:3]]
    return blocks[0], blocks[1]


def test_the_readmes_tracker_snippet_runs_with_the_real_deep_sort(tmp_path: Path, monkeypatch) -> None:
    """The README's two snippets in order, as a user pastes them: a float box, a box past the frame
    edge, then a frame with no person (deep-sort-realtime's own embedders answer [] there)."""
    pytest.importorskip("deep_sort_realtime.deepsort_tracker")
    embedding, tracking = _readme_snippets()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(tmp_path / "frame.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(embedding, "README.md", "exec"), namespace)
    exec(compile(tracking, "README.md", "exec"), namespace)
    assert namespace["tracks"] == []  # no confirmed track after two frames, and no crash


def test_no_crops_give_no_embeddings(embedder) -> None:
    assert embedder.predict([]) == []
    assert embedder.embed([]).shape == (0, embedder.dim)
    assert embedder.embed(torch.zeros(0, 3, 64, 32)).shape == (0, embedder.dim)


def test_crop_boxes_clips_rounds_and_names_a_box_outside_the_frame() -> None:
    frame = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    crops = reid_stra.crop_boxes(frame, [(-5, -2, 4.2, 3.5), (18.5, 8.1, 40, 30), (2, 2, 6, 8)])
    assert [c.shape[:2] for c in crops] == [(4, 5), (2, 2), (6, 4)]
    np.testing.assert_array_equal(crops[2], frame[2:8, 2:6])
    np.testing.assert_array_equal(crops[1], frame[8:10, 18:20])
    assert reid_stra.crop_boxes(frame, []) == []
    for boxes, message in (
        ([(25, 0, 30, 5)], "box 0 (25, 0, 30, 5) has no pixel inside the 20 x 10 frame"),
        ([(1, 1, 5)], "box 0 is (1, 1, 5); expected four numbers"),
        ([(0, 0, float("nan"), 4)], "not a finite number"),
    ):
        with pytest.raises(ReidError, match=re.escape(message)):
            reid_stra.crop_boxes(frame, boxes)
