"""On-disk inverted lists (`index build --on-disk`) and shards merged into one (`--trained-only`,
`--shard I/N`, `index merge`): same answers as the index held in RAM, global row numbers, clear
refusals."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from reid_stra.retrieval.features import load_features
from reid_stra.retrieval.index import build_index, exact_index
from reid_stra.retrieval.index_ondisk import ivfdata_path
from reid_stra.retrieval.index_store import index_path, load_or_build_index, read_index_meta, save_index
from tests.helpers.galleries import clustered, save_gallery
from tests.helpers.robust import assert_clean_error, debris


@pytest.fixture(autouse=True)
def _one_faiss_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """FAISS on one thread: beside torch's OpenMP threads in this process, on a busy 2-core machine
    the barriers of PQ training's many small k-means cost seconds (the results are the same).
    The CLI's own once-per-command setting is held off for the test's duration."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    monkeypatch.setattr("reid_stra.metrics.neighbors.configure_faiss_threads", lambda: None)
    yield
    faiss.omp_set_num_threads(before)


def _queries(gallery: np.ndarray) -> np.ndarray:
    queries = gallery[::23] + 0.01
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


@pytest.mark.parametrize(("kind", "options"), [("ivf", {}), ("ivfpq", {"m": 8}), ("ivf", {"pca": 16})])
def test_an_on_disk_index_answers_as_the_in_ram_one(tmp_path: Path, kind: str, options: dict) -> None:
    """Saved with its lists in a data file and loaded back through a memory map, the index gives
    the in-RAM index's neighbours (ivfpq on disk scans without fast scan: same neighbours after
    the exact re-ranking on this problem)."""
    path = save_gallery(tmp_path, clustered(ids=150))
    feats, meta = load_features(path)
    queries = _queries(feats)
    in_ram = build_index(feats, kind, progress=False, **options)
    save_index(build_index(feats, kind, on_disk=True, progress=False, **options), path, meta)

    saved = read_index_meta(path)
    assert saved["on_disk"] and saved["ivfdata"] == "gallery.faiss.ivfdata"
    assert ivfdata_path(index_path(path)).stat().st_size == saved["ivfdata_bytes"] > 0
    loaded = load_or_build_index(path, "auto")
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(loaded.index).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.read_only  # mapped, not loaded
    assert loaded.kind == kind and loaded.params["on_disk"] and loaded.count == len(feats)
    distances, indices = loaded.search(queries, 10)
    expected_d, expected_i = in_ram.search(queries, 10)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, atol=1e-5)
    if kind == "ivf" and not options:
        np.testing.assert_array_equal(distances, expected_d)  # the very same lists, scanned alike


@pytest.mark.parametrize(("kind", "shards"), [("ivfpq", 2), ("ivfpq", 3), ("ivf", 3)])
def test_shards_merged_give_the_one_shot_on_disk_index(cli, tmp_path: Path, kind: str, shards: int) -> None:
    """Shards of one trained index hold the rows of contiguous ranges under their gallery row
    numbers, so their merged lists are the one-shot build's, byte for byte, and each query's
    nearest neighbour is its own gallery row, whichever shard holds it."""
    gallery = clustered(ids=110)  # 1,100 rows: shards of 550 or 366/367/367
    path = save_gallery(tmp_path, gallery)
    rows = np.array([0, 1, 365, 366, 367, 549, 550, 551, 733, 734, 1099])  # both sides of each border
    queries = save_gallery(tmp_path, gallery[rows], "queries.npy", prefix="/q")
    search = ("search", "--query-features", queries, "--gallery", path, "--top-k", "5", "--json")

    options = ("--kind", kind, "--m", "8") if kind == "ivfpq" else ("--kind", kind)
    assert cli("index", "build", path, *options, "--on-disk").exit_code == 0
    one_shot = json.loads(cli(*search).stdout)
    one_shot_lists = ivfdata_path(index_path(path)).read_bytes()

    assert cli("index", "build", path, *options, "--trained-only").exit_code == 0
    for shard in range(1, shards + 1):
        built = cli("index", "build", path, "--shard", f"{shard}/{shards}", "--json")
        assert built.exit_code == 0, built.stderr
        start, stop = json.loads(built.stdout)["rows"]
        assert (start, stop) == (len(gallery) * (shard - 1) // shards, len(gallery) * shard // shards)
    merged = cli("index", "merge", path, "--json")
    assert merged.exit_code == 0, merged.stderr
    result = json.loads(merged.stdout)
    assert result["vectors"] == len(gallery) and result["params"]["shards"] == shards
    assert result["ivfdata"] == str(ivfdata_path(index_path(path)))
    assert debris(tmp_path) == []  # the temporary lists and data files are gone

    assert ivfdata_path(index_path(path)).read_bytes() == one_shot_lists
    answers = json.loads(cli(*search).stdout)
    assert answers["results"] == one_shot["results"] and answers["index"]["params"]["on_disk"]
    assert [r["matches"][0]["index"] for r in answers["results"]] == rows.tolist()
    assert [r["matches"][0]["path"] for r in answers["results"]] == [f"/g/{r}.jpg" for r in rows]
    info = json.loads(cli("index", "info", path, "--json").stdout)
    assert info["index_current"] and info["index_data"] == str(ivfdata_path(index_path(path)))


def test_merge_refuses_missing_shards_and_shards_of_another_training(cli, tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered(ids=30))
    assert cli("index", "build", path, "--kind", "ivf", "--trained-only").exit_code == 0
    for shard in (1, 3):
        assert cli("index", "build", path, "--shard", f"{shard}/3").exit_code == 0

    missing = cli("index", "merge", path)
    shard_2 = tmp_path / "gallery.shard-2-of-3.faiss"
    assert_clean_error(
        missing, f"{shard_2}: missing; build it with `reid-stra index build {path} --shard 2/3`"
    )

    four = cli("index", "merge", path, "--shards", "4")
    assert_clean_error(four, "shards 1, 2, 3, 4 of 4 are missing", "--shard I/4`")

    assert cli("index", "build", path, "--shard", "2/3").exit_code == 0
    assert cli("index", "build", path, "--kind", "ivf", "--nlist", "9", "--trained-only").exit_code == 0
    retrained = cli("index", "merge", path)
    shard_1 = tmp_path / "gallery.shard-1-of-3.faiss"
    assert_clean_error(
        retrained,
        f"{shard_1}: added to another trained index than gallery.trained.faiss",
        f"`reid-stra index build {path} --shard 1/3`",
    )
    assert not index_path(path).exists()  # nothing merged


def test_option_errors_are_one_line(cli, tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered(ids=30))
    for args, expected in [
        (
            ("--kind", "flat", "--on-disk"),
            "--on-disk: does not apply to --kind flat (it is for ivf, ivfpq)",
        ),
        (("--on-disk",), "--on-disk: does not apply to --kind flat"),
        (("--kind", "hnsw", "--trained-only"), "--trained-only: shards are merged as inverted lists"),
        (
            ("--shard", "1/2"),
            f"{tmp_path / 'gallery.trained.faiss'}: no trained index to add shards to",
        ),
        (("--shard", "0/2"), "--shard 0/2: give I/N with 1 <= I <= N"),
        (
            ("--shard", "1/2", "--nlist", "4"),
            "--nlist: a shard is added to the trained index as it was",
        ),
    ]:
        result = cli("index", "build", path, *args)
        assert_clean_error(result, expected)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {expected}")
    assert_clean_error(cli("index", "merge", path), "gallery.trained.faiss: no trained index")


def test_merge_json_is_all_that_reaches_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """FAISS reports writing the data file with C's printf: kept off the stdout --json uses."""
    from reid_stra.cli.app import run

    path = save_gallery(tmp_path, clustered(ids=30))
    assert run(["index", "build", str(path), "--kind", "ivf", "--trained-only"]) == 0
    assert run(["index", "build", str(path), "--shard", "1/1"]) == 0
    capfd.readouterr()
    assert run(["index", "merge", str(path), "--json"]) == 0
    ctypes.CDLL(None).fflush(None)  # whatever C code left in its stdout buffer
    assert json.loads(capfd.readouterr().out)["vectors"] == 300


def test_stale_on_disk_index_is_rebuilt_on_disk_and_replaced_by_an_in_ram_one(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered(ids=30))
    feats, meta = load_features(path)
    save_index(build_index(feats, "ivf", on_disk=True, progress=False), path, meta)
    save_gallery(tmp_path, clustered(ids=30, seed=3))  # the features change under the index
    new_feats, new_meta = load_features(path)
    rebuilt = load_or_build_index(path, "auto", progress=False)
    assert rebuilt.params["on_disk"] and read_index_meta(path)["on_disk"]
    _, exact = exact_index(new_feats).search(new_feats[:5], 1)
    assert np.array_equal(load_or_build_index(path, "auto").search(new_feats[:5], 1)[1], exact)

    save_index(build_index(new_feats, "ivf", progress=False), path, new_meta)  # back in RAM
    assert not read_index_meta(path).get("on_disk") and not ivfdata_path(index_path(path)).exists()
