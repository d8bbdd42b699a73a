"""Person/camera ids of a user's own crops: kept per image, from Market names, --id-pattern or --ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reid_stra.errors import ReidError
from reid_stra.retrieval.features import load_features
from reid_stra.retrieval.ids import IdSource, id_source, read_id_table

SMALL = ["--height", "64", "--width", "32", "--workers", "0", "--device", "cpu"]
RENAMED = 3


@pytest.fixture(scope="module")
def mixed_gallery(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """The synthetic gallery with a few crops renamed the way a user's exporter names them."""
    folder = tmp_path_factory.mktemp("mixed") / "gallery"
    shutil.copytree(synthetic_root / "bounding_box_test", folder)
    real = sorted(p for p in folder.glob("*.jpg") if not p.name.startswith(("0000", "-1")))
    for number, path in enumerate(real[:RENAMED], start=1):
        path.rename(folder / f"cam_frame_{number:03d}.jpg")
    return folder


def test_ids_are_kept_for_the_names_that_parse() -> None:
    parsed = IdSource().parse(["/x/0002_c1s1_000451_03.jpg", "/x/person.jpg", "/x/-1_c4s1_000001_01.jpg"])
    assert parsed.pids == [2, None, -1] and parsed.camids == [1, None, 4]
    assert parsed.known == 2 and parsed.unparsed == ["/x/person.jpg"]
    line = parsed.summary("their Market-style file names")
    assert line is not None and "1 of 3 images" in line and "person.jpg" in line and "--ids" in line
    none = IdSource().parse(["/x/a.jpg", "/x/b.jpg"])
    assert none.pids is None and none.summary("names") is None  # a folder of plain crops: no ids, no noise


def test_id_pattern_and_id_table(tmp_path: Path) -> None:
    pattern = id_source(id_pattern=r"id(?P<pid>\d+)_cam(?P<camid>\d+)")
    assert pattern.parse(["/c/id17_cam2_f9.png", "/c/other.png"]).pids == [17, None]
    table_file = tmp_path / "ids.csv"
    table_file.write_text("path,pid,camid\nsub/a.jpg,5,1\nb.jpg,6,2\n# a comment\n\n")
    table = read_id_table(table_file)
    assert table == {str(tmp_path / "sub" / "a.jpg"): (5, 1), "b.jpg": (6, 2)}
    parsed = id_source(ids_file=table_file).parse(
        [str(tmp_path / "sub" / "a.jpg"), "/any/b.jpg", "/any/c.jpg"]
    )
    assert parsed.pids == [5, 6, None] and parsed.camids == [1, 2, None]
    assert id_source(id_pattern=r"f(?P<pid>\d*)_(?P<camid>\d*)").parse(["/c/f_.png", "/c/f1_2.png"]).pids == [
        None,
        1,
    ]


@pytest.mark.parametrize(
    ("kwargs", "content", "expected"),
    [
        ({"id_pattern": "id(?P<pid>\\d+"}, None, "not a valid regular expression"),
        ({"id_pattern": "id(?P<pid>\\d+)"}, None, "missing camid"),
        ({"ids_file": "ids.csv"}, "a.jpg,5\n", "line 1 has 2 columns"),
        ({"ids_file": "ids.csv"}, "path,pid,camid\na.jpg,five,1\n", "line 2: pid and camid must be integers"),
        ({"ids_file": "ids.csv"}, "path,pid,camid\n", "no path,pid,camid rows"),
        ({"ids_file": "missing.csv"}, None, "cannot read"),
        ({"ids_file": "ids.csv", "id_pattern": "(?P<pid>1)(?P<camid>2)"}, "a.jpg,1,1\n", "give one of them"),
    ],
)
def test_bad_id_options_are_one_line_errors(tmp_path: Path, kwargs, content, expected: str) -> None:
    if content is not None:
        (tmp_path / "ids.csv").write_text(content)
    if "ids_file" in kwargs:
        kwargs = kwargs | {"ids_file": tmp_path / kwargs["ids_file"]}
    with pytest.raises(ReidError, match=expected) as error:
        id_source(**kwargs)
    assert "\n" not in str(error.value) and str(error.value).startswith(("--ids", "--id-pattern"))


def test_extract_keeps_the_ids_that_parse_and_says_which_did_not(
    cli, mixed_gallery: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gallery.npy"
    result = cli("extract", mixed_gallery, "-o", out, *SMALL, "--json")
    assert result.exit_code == 0, result.stderr
    images = len(list(mixed_gallery.glob("*.jpg")))
    assert f"{RENAMED} of {images} images have no person/camera id" in result.stderr
    assert "cam_frame_001.jpg" in result.stderr
    assert json.loads(result.stdout)["images_with_ids"] == images - RENAMED
    _, meta = load_features(out)
    for path, pid, camid in zip(meta.paths, meta.pids, meta.camids, strict=True):
        renamed = Path(path).name.startswith("cam_frame_")
        assert (
            (pid is None and camid is None) if renamed else (isinstance(pid, int) and isinstance(camid, int))
        )

    # search: known ids stay in the results; the renamed crops have none
    search = cli("search", *sorted(mixed_gallery.glob("0*.jpg"))[:2], "--gallery", out, *SMALL[4:], "--json")
    assert search.exit_code == 0, search.stderr
    matches = [m for r in json.loads(search.stdout)["results"] for m in r["matches"]]
    assert all((m["pid"] is None) == Path(m["path"]).name.startswith("cam_frame_") for m in matches)
    assert any(m["pid"] is not None for m in matches)

    # evaluate: the rows without ids are left out, and it says so
    evaluate = cli("evaluate", "--query-features", out, "--gallery-features", out, "--json")
    assert evaluate.exit_code == 0, evaluate.stderr
    assert f"{RENAMED} of {images} rows have no person/camera id" in evaluate.stderr


def test_ids_from_a_table_or_a_pattern(cli, mixed_gallery: Path, tmp_path: Path) -> None:
    table = tmp_path / "ids.csv"
    table.write_text("".join(f"cam_frame_{n:03d}.jpg,{100 + n},1\n" for n in range(1, RENAMED + 1)))
    out = tmp_path / "table.npy"
    result = cli("extract", *sorted(mixed_gallery.glob("cam_frame_*.jpg")), "-o", out, *SMALL, "--ids", table)
    assert result.exit_code == 0, result.stderr
    _, meta = load_features(out)
    assert meta.pids == [101, 102, 103] and meta.camids == [1, 1, 1]
    regex = r"^(?P<pid>\d{4})_c(?P<camid>\d)"  # distractors (0000) and known ids parse; -1 junk does not
    pattern = cli("extract", mixed_gallery, "-o", tmp_path / "pattern.npy", *SMALL, "--id-pattern", regex)
    assert pattern.exit_code == 0, pattern.stderr
    _, meta = load_features(tmp_path / "pattern.npy")
    names = [Path(p).name for p in meta.paths]
    assert [pid is None for pid in meta.pids] == [n.startswith(("cam_frame_", "-1")) for n in names]
    bad = cli("extract", mixed_gallery, "-o", tmp_path / "bad.npy", *SMALL, "--id-pattern", "(?P<pid>")
    assert (
        bad.exit_code == 2
        and bad.stderr.startswith("error: --id-pattern")
        and not (tmp_path / "bad.npy").exists()
    )
