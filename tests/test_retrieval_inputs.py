"""INPUT... expansion: folders, globs and path lists become one sorted, unique list of images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reid_stra.errors import ReidError
from reid_stra.retrieval.ids import IdSource
from reid_stra.retrieval.inputs import expand_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _touch(tmp_path / "a" / "0001_c1s1_000001_01.jpg")
    _touch(tmp_path / "a" / "sub" / "0002_c2s1_000001_01.png")
    _touch(tmp_path / "a" / "notes.txt")
    _touch(tmp_path / "a" / ".hidden" / "0003_c1s1_000001_01.jpg")
    _touch(tmp_path / "a" / "._0004_c1s1_000001_01.jpg")  # macOS metadata, not an image
    _touch(tmp_path / "b" / "with space.JPG")
    return tmp_path


def test_folder_is_searched_recursively_skipping_hidden(tree: Path) -> None:
    found = expand_inputs([tree / "a"])
    assert [Path(p).name for p in found] == ["0001_c1s1_000001_01.jpg", "0002_c2s1_000001_01.png"]
    assert all(os.path.isabs(p) for p in found)


def test_sorted_unique_across_inputs(tree: Path) -> None:
    image = tree / "a" / "0001_c1s1_000001_01.jpg"
    found = expand_inputs([tree / "b", image, tree / "a", str(image)])
    assert found == sorted(found)
    assert len(found) == len(set(found)) == 3
    assert any(p.endswith("with space.JPG") for p in found)


def test_glob(tree: Path) -> None:
    found = expand_inputs([str(tree / "a" / "**" / "*.png")])
    assert [Path(p).name for p in found] == ["0002_c2s1_000001_01.png"]
    with pytest.raises(ReidError, match="glob matches nothing"):
        expand_inputs([str(tree / "*.bmp")])


def test_list_file_relative_to_itself(tree: Path) -> None:
    listing = tree / "lists" / "queries.txt"
    listing.parent.mkdir()
    listing.write_text("# queries\n\n../a/0001_c1s1_000001_01.jpg\n" + str(tree / "b") + "\n")
    found = expand_inputs([listing])
    assert [Path(p).name for p in found] == ["0001_c1s1_000001_01.jpg", "with space.JPG"]


def test_binary_file_is_not_taken_for_a_list(tree: Path) -> None:
    blob = tree / "feats.npy"
    blob.write_bytes(b"\x93NUMPY\x00\x01")
    with pytest.raises(ReidError, match="neither an image"):
        expand_inputs([blob])


def test_missing_input_and_empty_result(tree: Path) -> None:
    with pytest.raises(ReidError, match="no such file or folder"):
        expand_inputs([tree / "nope"])
    (tree / "empty").mkdir()
    with pytest.raises(ReidError, match="no images found"):
        expand_inputs([tree / "empty"])
    with pytest.raises(ReidError, match="at least one"):
        expand_inputs([])


def test_symlink_loop_does_not_hang(tree: Path) -> None:
    os.symlink(tree / "a", tree / "a" / "sub" / "loop")
    found = expand_inputs([tree / "a"])
    assert len(found) == 2


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/0005_c3s1_000001_01_\xff.jpg"
    with open(raw, "wb") as handle:
        handle.write(b"x")
    found = expand_inputs([tmp_path])
    assert len(found) == 1
    assert os.fsencode(found[0]) == raw
    parsed = IdSource().parse(found)
    assert (parsed.pids, parsed.camids) == ([5], [3])
