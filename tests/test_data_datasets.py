"""Dataset readers on faked directory trees, the synthetic data and the shared Market-1501 split."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from reid_stra.data.datasets import (
    Sample,
    dataset_info,
    list_datasets,
    load_dataset,
    parse_dataset_options,
    parse_market_name,
    verify_images,
)
from reid_stra.errors import ReidError

MARKET_SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 60, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


JPEG = _jpeg_bytes()


def touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(JPEG)


def fake_market(base: Path, ext: str = "jpg") -> Path:
    """Train ids 7 and 3 (and junk), query ids 2/5, gallery with a distractor and junk."""
    touch_images(
        base / "bounding_box_train",
        [f"0007_c1s1_000101_01.{ext}", f"0007_c2s1_000201_01.{ext}", f"0003_c1s1_000301_01.{ext}",
         f"0003_c3s2_000401_02.{ext}", f"-1_c1s1_000501_01.{ext}"],
    )  # fmt: skip
    touch_images(base / "query", [f"0002_c1s1_001001_01.{ext}", f"0005_c2s1_001101_01.{ext}"])
    touch_images(
        base / "bounding_box_test",
        [f"0002_c2s1_002001_01.{ext}", f"0002_c1s1_002101_01.{ext}", f"0005_c1s1_002201_01.{ext}",
         f"0000_c3s1_002301_01.{ext}", f"-1_c1s1_002401_01.{ext}"],
    )  # fmt: skip
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image, ignored")
    return base


# --- Market-1501 and friends ---------------------------------------------------------------


@pytest.mark.parametrize("top", ["", "Market-1501-v15.09.15", "Market-1501", "market1501_copy"])
def test_market_found_with_or_without_top_folder(tmp_path: Path, top: str) -> None:
    fake_market(tmp_path / top if top else tmp_path)
    dataset = load_dataset("market1501", tmp_path)
    assert dataset.root == (tmp_path / top if top else tmp_path)
    assert len(dataset.train) == 4 and len(dataset.query) == 2 and len(dataset.gallery) == 4


def test_market_relabels_train_and_keeps_test_ids(tmp_path: Path) -> None:
    dataset = load_dataset("market1501", fake_market(tmp_path))
    assert dataset.train_pid_map == {3: 0, 7: 1}
    assert dataset.num_train_pids == 2
    by_name = {Path(s.path).name: s for s in dataset.train}
    assert by_name["0007_c2s1_000201_01.jpg"] == Sample(
        str(tmp_path / "bounding_box_train/0007_c2s1_000201_01.jpg"), 1, 2
    )
    assert by_name["0003_c3s2_000401_02.jpg"].pid == 0 and by_name["0003_c3s2_000401_02.jpg"].camid == 3
    assert sorted(s.pid for s in dataset.query) == [2, 5]
    # junk dropped everywhere, the distractor (0) kept in the gallery
    assert all(s.pid != -1 for split in dataset.splits().values() for s in split)
    assert sorted(s.pid for s in dataset.gallery) == [0, 2, 2, 5]
    assert [row["split"] for row in dataset.summary()] == ["train", "query", "gallery"]
    gallery_row = dataset.summary()[2]
    assert gallery_row == {"split": "gallery", "ids": 2, "images": 4, "cameras": 3, "distractors": 1}


def test_loading_is_deterministic(tmp_path: Path) -> None:
    fake_market(tmp_path)
    first, second = load_dataset("market1501", tmp_path), load_dataset("market1501", tmp_path)
    assert first.train == second.train and first.gallery == second.gallery
    assert [s.path for s in first.train] == sorted(s.path for s in first.train)


def test_only_requested_splits_are_read(tmp_path: Path) -> None:
    fake_market(tmp_path)
    (tmp_path / "bounding_box_train").rename(tmp_path / "elsewhere")
    dataset = load_dataset("market1501", tmp_path, splits=("query", "gallery"))
    assert dataset.train == [] and len(dataset.query) == 2
    with pytest.raises(ReidError, match="bounding_box_train/"):
        load_dataset("market1501", tmp_path)


def test_duke_names_and_top_folder(tmp_path: Path) -> None:
    base = tmp_path / "DukeMTMC-reID"
    touch_images(
        base / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c5_f0051341.jpg", "0010_c1_f0000001.jpg"]
    )
    touch_images(base / "query", ["0005_c2_f0046999.jpg"])
    touch_images(base / "bounding_box_test", ["0005_c8_f0100000.jpg", "0000_c1_f0000002.jpg"])
    dataset = load_dataset("DukeMTMC-reID", tmp_path)
    assert dataset.name == "dukemtmcreid"
    assert sorted((s.pid, s.camid) for s in dataset.train) == [(0, 2), (0, 5), (1, 1)]
    assert {s.camid for s in dataset.gallery} == {8, 1}


@pytest.mark.parametrize("variant", ["labeled", "detected"])
def test_cuhk03_np_variants(tmp_path: Path, variant: str) -> None:
    for v, offset in (("labeled", 0), ("detected", 100)):
        base = tmp_path / "cuhk03-np" / v
        touch_images(
            base / "bounding_box_train", [f"{offset + 1:04d}_c1_1.png", f"{offset + 1:04d}_c2_2.png"]
        )
        touch_images(base / "query", ["0700_c1_1.png"])
        touch_images(base / "bounding_box_test", ["0700_c2_3.png"])
    dataset = load_dataset("cuhk03", tmp_path, variant=variant)
    assert dataset.train_pid_map == {1 if variant == "labeled" else 101: 0}
    assert dataset.name == f"cuhk03-{variant}"
    # pointing --root straight at the variant folder works too
    direct = load_dataset("cuhk03", tmp_path / "cuhk03-np" / variant, variant=variant)
    assert direct.train == dataset.train
    with pytest.raises(ReidError, match="expected labeled or detected"):
        load_dataset("cuhk03", tmp_path, variant="both")


def _fake_msmt(root: Path, version: str) -> Path:
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    base = root / f"MSMT17_{version}"
    train = ["0000/0000_000_01_0303morning_0015_0.jpg", "0000/0000_001_05_0303morning_0030_1.jpg",
             "0002/0002_000_15_0303noon_0100_0.jpg"]  # fmt: skip
    val = ["0002/0002_001_03_0303noon_0200_0.jpg"]
    query = ["0000/0000_000_07_0304morning_0001_0.jpg"]
    gallery = ["0000/0000_001_02_0304morning_0002_0.jpg", "0001/0001_000_11_0304noon_0003_0.jpg"]
    touch_images(base / train_dir, train + val)
    touch_images(base / test_dir, query + gallery)
    (base / "list_train.txt").write_text("".join(f"{p} {int(p[:4])}\n" for p in train))
    (base / "list_val.txt").write_text("".join(f"{p} {int(p[:4])}\n" for p in val))
    (base / "list_query.txt").write_text("".join(f"{p} {int(p[:4])}\n" for p in query))
    (base / "list_gallery.txt").write_text("".join(f"{p} {int(p[:4])}\n" for p in gallery) + "\n")
    return base


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17_lists_and_val(tmp_path: Path, version: str) -> None:
    base = _fake_msmt(tmp_path, version)
    dataset = load_dataset("msmt17", tmp_path)
    assert dataset.root == base
    assert len(dataset.train) == 3 and len(dataset.val) == 1
    assert sorted(s.camid for s in dataset.train) == [1, 5, 15]  # camera = third name field, as written
    assert dataset.val[0].pid == dataset.train_pid_map[2]
    assert [s.pid for s in dataset.query] == [0] and sorted(s.pid for s in dataset.gallery) == [0, 1]
    assert all(Path(s.path).is_file() for s in dataset.train + dataset.query + dataset.gallery)
    combined = load_dataset("msmt17", base, combine_val=True)  # ROOT may be the version folder itself
    assert len(combined.train) == 4 and combined.val == []
    assert [row["split"] for row in dataset.summary()] == ["train", "query", "gallery", "val"]


def test_msmt17_wrong_version_and_bad_list(tmp_path: Path) -> None:
    base = _fake_msmt(tmp_path, "V1")
    with pytest.raises(ReidError, match="MSMT17_V2/"):
        load_dataset("msmt17", tmp_path, version="V2")
    (base / "list_query.txt").write_text("0000/broken.jpg zero\n")
    with pytest.raises(ReidError, match=r"list_query.txt:1: cannot read"):
        load_dataset("msmt17", tmp_path)
    (base / "list_query.txt").write_text("0000/0000_000_07_0304morning_9999_0.jpg 0\n")
    with pytest.raises(ReidError, match="do not exist"):
        load_dataset("msmt17", tmp_path)


# --- generic folder dataset -----------------------------------------------------------------


def test_folder_with_default_and_custom_pattern(tmp_path: Path) -> None:
    touch_images(tmp_path / "train", ["0004_c1_a.jpg", "0009_c2_b.jpg"])
    touch_images(tmp_path / "query", ["0011_c1_a.jpg"])
    touch_images(tmp_path / "gallery", ["0011_c2_a.jpg"])
    dataset = load_dataset("folder", tmp_path)
    assert dataset.train_pid_map == {4: 0, 9: 1}

    custom = tmp_path / "custom"
    touch_images(custom / "tr", ["person12/cam3_x.png", "person40/cam1_y.png"])
    touch_images(custom / "q", ["person7/cam2_z.png"])
    touch_images(custom / "g", ["person7/cam4_z.png"])
    options = parse_dataset_options(
        "folder",
        ["train_dir=tr", "query_dir=q", "gallery_dir=g", r"pattern=person(?P<pid>\d+)/cam(?P<camid>\d+)",
         "recursive=true"],
    )  # fmt: skip
    assert options["recursive"] is True
    dataset = load_dataset("folder", custom, **options)
    assert sorted((s.pid, s.camid) for s in dataset.train) == [(0, 3), (1, 1)]
    assert dataset.query[0].pid == 7 and dataset.gallery[0].camid == 4


def test_folder_from_csv(tmp_path: Path) -> None:
    touch_images(tmp_path / "imgs", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    touch_images(tmp_path / "query", ["q.jpg"])
    (tmp_path / "labels.csv").write_text(
        "path,pid,camid,split\nimgs/a.jpg,30,1,train\nimgs/b.jpg,10,2,train\nimgs/c.jpg,5,2,gallery\n"
        "imgs/d.jpg,-1,1,gallery\nquery/q.jpg,5,1,\n"
    )
    dataset = load_dataset("folder", tmp_path, csv="labels.csv")
    assert dataset.train_pid_map == {10: 0, 30: 1}
    assert dataset.query == [Sample(str(tmp_path / "query/q.jpg"), 5, 1)]  # split from its folder
    assert [s.pid for s in dataset.gallery] == [5]  # junk row dropped

    (tmp_path / "bad.csv").write_text("file,person\nimgs/a.jpg,1\n")
    with pytest.raises(ReidError, match="expected columns path,pid,camid"):
        load_dataset("folder", tmp_path, csv="bad.csv")
    (tmp_path / "missing.csv").write_text("path,pid,camid,split\nimgs/zz.jpg,1,1,train\n")
    with pytest.raises(ReidError, match="not found: .*zz.jpg"):
        load_dataset("folder", tmp_path, csv="missing.csv")


def test_folder_pattern_errors(tmp_path: Path) -> None:
    touch_images(tmp_path / "train", ["x.jpg"])
    with pytest.raises(ReidError, match="named groups"):
        load_dataset("folder", tmp_path, pattern=r"(\d+)_c(\d+)")
    with pytest.raises(ReidError, match="not a valid regular expression"):
        load_dataset("folder", tmp_path, pattern="(?P<pid>")


# --- errors and warnings ----------------------------------------------------------------------


def test_unknown_dataset_and_option() -> None:
    with pytest.raises(ReidError, match=r"unknown dataset 'market150'.*did you mean 'market1501'"):
        load_dataset("market150", ".")
    with pytest.raises(ReidError, match="unknown option 'variant'"):
        load_dataset("market1501", ".", variant="labeled")
    with pytest.raises(ReidError, match="expected key=value"):
        parse_dataset_options("cuhk03", ["variant"])
    assert {"market1501", "dukemtmcreid", "msmt17", "cuhk03", "folder"} <= set(list_datasets())
    assert dataset_info("Market-1501").name == "market1501"


def test_missing_root_and_split_folder(tmp_path: Path) -> None:
    with pytest.raises(ReidError, match="folder not found"):
        load_dataset("market1501", tmp_path / "nope")
    fake_market(tmp_path / "Market-1501")
    (tmp_path / "Market-1501" / "query").rename(tmp_path / "Market-1501" / "queries")
    with pytest.raises(ReidError) as info:
        load_dataset("market1501", tmp_path)
    message = str(info.value)
    assert "missing query/" in message and "queries/" in message and "bounding_box_test/" in message
    assert "\n" not in message


def test_empty_split_and_unparsable_names(tmp_path: Path) -> None:
    fake_market(tmp_path)
    for path in (tmp_path / "query").iterdir():
        path.unlink()
    with pytest.raises(ReidError, match="query split is empty"):
        load_dataset("market1501", tmp_path)
    touch_images(tmp_path / "query", ["0002_c1s1_001001_01.jpg", "frame_001.jpg", "IMG_2.jpg"])
    with pytest.raises(ReidError, match=r"2 file name\(s\) do not match.*0002_c1s1_000451_03.jpg.*IMG_2.jpg"):
        load_dataset("market1501", tmp_path)


def test_ambiguous_root(tmp_path: Path) -> None:
    fake_market(tmp_path / "copy_a")
    fake_market(tmp_path / "copy_b")
    with pytest.raises(ReidError, match="several folders look like Market-1501"):
        load_dataset("market1501", tmp_path)


def test_single_camera_and_absent_query_ids_are_warned(tmp_path: Path) -> None:
    touch_images(tmp_path / "bounding_box_train", ["0001_c1s1_000001_01.jpg"])
    touch_images(tmp_path / "query", ["0002_c1s1_000002_01.jpg", "0003_c1s1_000003_01.jpg"])
    touch_images(tmp_path / "bounding_box_test", ["0002_c1s1_000004_01.jpg"])
    warnings = load_dataset("market1501", tmp_path).warnings
    assert any("all come from camera 1" in w for w in warnings)
    assert any("1 of 2 queries have an id that is absent from the gallery" in w for w in warnings)
    touch_images(tmp_path / "bounding_box_test", ["0003_c2s1_000005_01.jpg"])
    warnings = load_dataset("market1501", tmp_path).warnings
    assert warnings == ["1 of 2 queries have their matches only in the same camera, which standard "
                        "evaluation ignores; those queries will not be scored"]  # fmt: skip


def test_bad_images_fail_or_are_skipped(tmp_path: Path) -> None:
    fake_market(tmp_path)
    broken = tmp_path / "bounding_box_train" / "0003_c1s1_000301_01.jpg"
    broken.write_bytes(JPEG[:40])  # truncated
    (tmp_path / "bounding_box_test" / "0005_c1s1_002201_01.jpg").write_bytes(b"")
    assert load_dataset("market1501", tmp_path).train  # not verified by default: fast
    assert sorted(p for p, _ in verify_images([broken, tmp_path / "query" / "0002_c1s1_001001_01.jpg"])) == [
        str(broken)
    ]
    with pytest.raises(ReidError, match=r"2 unreadable image\(s\).*0003_c1s1_000301_01.jpg.*--skip-bad"):
        load_dataset("market1501", tmp_path, verify_images=True)
    dataset = load_dataset("market1501", tmp_path, verify_images=True, skip_bad=True)
    assert len(dataset.skipped) == 2 and any("skipped 2 unreadable" in w for w in dataset.warnings)
    assert str(broken) not in {s.path for s in dataset.train}
    assert sorted(s.pid for s in dataset.train) == [0, 1, 1]  # id 3 keeps label 0 with its other image


# --- synthetic and shared data ----------------------------------------------------------------


def test_reads_synthetic_fixture(synthetic_root: Path) -> None:
    dataset = load_dataset("market1501", synthetic_root, verify_images=True)
    assert [(r["ids"], r["images"], r["cameras"]) for r in dataset.summary()] == [
        (8, 48, 3),
        (6, 18, 3),
        (6, 21, 3),
    ]
    assert dataset.warnings == []


def test_parse_market_name() -> None:
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 1)
    assert parse_market_name("/x/-1_c6s4_002352_01.jpg") == (-1, 6)
    with pytest.raises(ReidError, match="does not look like"):
        parse_market_name("foo.jpg")


def test_shared_market_mini(shared_dir: Path) -> None:
    dataset = load_dataset("market1501", shared_dir / "data" / "Market-1501-mini")
    assert dataset.root.name == "Market-1501-mini"
    assert dataset.num_train_pids == 480 and len(dataset.train) == 8299
    assert len(dataset.query) == 536 and len(dataset.gallery) == 1645
    assert len({s.pid for s in dataset.query}) == 121
    assert sorted(dataset.train_pid_map.values()) == list(range(480))
    assert {s.camid for s in dataset.train} == {1, 2, 3, 4, 5, 6}


def test_a_parent_of_two_market_layout_datasets_is_ambiguous(shared_dir: Path) -> None:
    """../shared/data holds Market-1501-mini and CUHK03-detected, both in Market's layout."""
    if not (shared_dir / "data" / "CUHK03-detected").is_dir():
        pytest.skip("CUHK03-detected is not in ../shared/data")
    with pytest.raises(ReidError, match="CUHK03-detected/, Market-1501-mini/.*point --root at the one"):
        load_dataset("market1501", shared_dir / "data")
