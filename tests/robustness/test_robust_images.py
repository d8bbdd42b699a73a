"""Messy image folders: every bad file is named, odd-but-valid files work, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from reid_stra.data.images import read_image
from reid_stra.errors import ReidError
from tests.helpers.robust import SIZE, assert_clean_error, debris


def _good(synthetic_root: Path) -> list[Path]:
    return sorted((synthetic_root / "query").glob("*.jpg"))[:3]


def _make_bad(folder: Path, good: Path) -> dict[str, Path]:
    """One file per kind of damage a user's folder may hold."""
    data = good.read_bytes()
    bad = {
        "zero-byte": folder / "0001_c1s1_000001_00.jpg",
        "truncated": folder / "0001_c1s1_000002_00.jpg",
        "not-an-image": folder / "0001_c1s1_000003_00.jpg",
        "bomb": folder / "0001_c1s1_000004_00.png",
        "symlink-loop": folder / "0001_c1s1_000005_00.jpg",
    }
    bad["zero-byte"].write_bytes(b"")
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["not-an-image"].write_text("name,id\nthis is a csv file\n")
    Image.new("1", (20_000, 20_000)).save(bad["bomb"])  # 400 Mpx, a few KB on disk
    bad["symlink-loop-partner"] = folder / "loop_b.jpg"
    os.symlink(bad["symlink-loop-partner"], bad["symlink-loop"])
    os.symlink(bad["symlink-loop"], bad["symlink-loop-partner"])
    return bad


def _make_odd(folder: Path, good: Path) -> list[Path]:
    """Valid images in unusual modes or with unusual names: all must be read."""
    odd = [folder / "0002_c1s1_000001_00.png", folder / "0002_c1s1_000002_00.jpg"]
    Image.new("RGBA", (32, 64), (200, 10, 10, 90)).save(odd[0])
    Image.new("L", (32, 64), 120).save(odd[1])
    cmyk = folder / "0002_c1s1_000003_00.jpg"
    Image.open(good).convert("CMYK").save(cmyk)
    spaced = folder / "my crops 0002_c2s1_000004_00.jpg"
    shutil.copy(good, spaced)
    raw = os.fsencode(folder) + b"/\xff\xfe0002_c2s1_000005_00.jpg"  # not valid UTF-8
    shutil.copy(good, raw)
    return [*odd, cmyk, spaced, Path(os.fsdecode(raw))]


@pytest.fixture
def messy(tmp_path: Path, synthetic_root: Path) -> tuple[Path, dict[str, Path], list[Path]]:
    folder = tmp_path / "crops"
    folder.mkdir()
    good = _good(synthetic_root)
    for path in good:
        shutil.copy(path, folder / path.name)
    bad = _make_bad(folder, good[0])
    odd = _make_odd(folder, good[0])
    return folder, bad, [folder / p.name for p in good] + odd


def test_read_image_names_each_bad_file(messy) -> None:
    _, bad, odd = messy
    for kind, path in bad.items():
        with pytest.raises(ReidError) as caught:
            read_image(path)
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, kind
    for path in odd:
        image = read_image(path)
        assert image.mode == "RGB" and image.size[0] > 0


def test_read_image_unreadable_permissions(tmp_path: Path, synthetic_root: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop reads")
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    shutil.copy(_good(synthetic_root)[0], path)
    path.chmod(0)
    with pytest.raises(ReidError, match="permission denied"):
        read_image(path)


def test_extract_stops_with_the_list_of_bad_files(cli, messy, tmp_path: Path) -> None:
    folder, bad, _ = messy
    out = tmp_path / "out" / "feats.npy"
    result = cli("extract", folder, "-o", out, *SIZE)
    assert_clean_error(result, str(bad["zero-byte"]), "--skip-bad", f"{len(bad)} unreadable")
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert debris(out.parent) == []


def test_extract_skip_bad_reports_and_keeps_every_good_image(cli, messy, tmp_path: Path) -> None:
    folder, bad, good = messy
    out = tmp_path / "feats.npy"
    result = cli("extract", folder, "-o", out, "--skip-bad", "--json", *SIZE)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(item["path"] for item in report["skipped"]) == sorted(str(p) for p in bad.values())
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sorted(sidecar["paths"]) == sorted(str(p) for p in good)  # non-UTF-8 name survives the trip
    assert sorted(item["path"] for item in sidecar["skipped"]) == sorted(str(p) for p in bad.values())
    assert debris(tmp_path) == []


def test_search_with_a_bad_query_image(cli, messy, gallery_features: Path) -> None:
    _, bad, good = messy
    stopped = cli("search", bad["truncated"], good[0], "--gallery", gallery_features, "--workers", "0")
    assert_clean_error(stopped, str(bad["truncated"]), "--skip-bad")
    skipped = cli(
        "search",
        bad["truncated"],
        *good,
        "--gallery",
        gallery_features,
        "--workers",
        "0",
        "--skip-bad",
        "--json",
    )
    assert skipped.exit_code == 0, skipped.stderr
    results = json.loads(skipped.stdout)["results"]
    assert len(results) == len(good) and "Traceback" not in skipped.stderr
    assert [item["path"] for item in json.loads(skipped.stdout)["skipped"]] == [str(bad["truncated"])]


def test_missing_input_is_a_clean_error(cli, tmp_path: Path) -> None:
    missing = tmp_path / "no such folder"
    assert_clean_error(cli("extract", missing, "-o", tmp_path / "f.npy", *SIZE), str(missing))
    assert debris(tmp_path) == [] and not (tmp_path / "f.npy").exists()
