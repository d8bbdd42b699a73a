"""FAISS indexes: exact search equals brute force, approximate ones find the neighbours, reuse is safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reid_stra.errors import ReidError
from reid_stra.metrics.neighbors import knn
from reid_stra.retrieval.features import load_features
from reid_stra.retrieval.index import build_index, exact_index
from reid_stra.retrieval.index_store import index_path, load_or_build_index, read_index_meta, save_index
from tests.helpers.galleries import clustered, save_gallery


def _brute_force(queries: np.ndarray, gallery: np.ndarray, k: int, metric: str):
    if metric == "ip":
        distances = 1.0 - queries @ gallery.T
    else:
        distances = ((queries[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distances, order, axis=1), order


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_search_equals_numpy_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((300, 24)).astype(np.float32)
    queries = rng.standard_normal((17, 24)).astype(np.float32)
    expected_d, expected_i = _brute_force(queries, gallery, 10, metric)
    for searcher in (
        exact_index(gallery, metric),
        build_index(gallery, "flat", metric=metric, progress=False),
    ):
        distances, indices = searcher.search(queries, 10)
        np.testing.assert_array_equal(indices, expected_i)
        np.testing.assert_allclose(distances, expected_d, rtol=1e-4, atol=1e-4)
    d2, i2 = knn(queries, gallery, 10, metric)
    np.testing.assert_array_equal(i2, expected_i)


@pytest.mark.parametrize(
    ("kind", "options"),
    [("ivf", {}), ("hnsw", {}), ("ivfpq", {"m": 8}), ("hnsw", {"pca": 16}), ("ivf", {"pca": 16})],
)
def test_approximate_indexes_find_the_exact_neighbours(kind: str, options: dict) -> None:
    gallery = clustered()
    queries = clustered(seed=0)[::37] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, exact = exact_index(gallery).search(queries, 10)
    distances, found = build_index(gallery, kind, progress=False, **options).search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)])
    assert recall >= 0.95
    assert np.all(np.diff(distances, axis=1) >= -1e-6)  # closest first


def test_ivfpq_streamed_from_a_memory_mapped_file_equals_a_one_shot_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `index build` does on a large gallery (rows read from the file in blocks, the training
    sample row by row) gives the very index an in-memory build gives: same neighbours, same recall."""
    import reid_stra.retrieval.index as index_module

    gallery = clustered(ids=300, views=10)
    queries = gallery[::29] + 0.01
    path = save_gallery(tmp_path, gallery)
    mapped, _ = load_features(path, mmap=True)
    assert isinstance(mapped, np.memmap)
    in_memory = build_index(np.array(gallery), "ivfpq", m=8, progress=False)
    monkeypatch.setattr(index_module, "_ADD_CHUNK", 256)  # many blocks even on this small file
    streamed = build_index(mapped, "ivfpq", m=8, progress=False)
    _, exact = exact_index(gallery).search(queries, 10)
    _, found_memory = in_memory.search(queries, 10)
    _, found_streamed = streamed.search(queries, 10)
    assert np.array_equal(found_memory, found_streamed)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found_streamed, strict=True)])
    assert recall >= 0.95


def test_top_k_is_clamped_to_gallery_size() -> None:
    gallery = clustered(ids=3, views=2)
    distances, indices = exact_index(gallery).search(gallery[:2], 50)
    assert indices.shape == (2, 6) and sorted(indices[0]) == list(range(6))


def test_query_dimension_mismatch_is_an_error() -> None:
    with pytest.raises(ReidError, match="dimension is 32"):
        exact_index(clustered()).search(np.zeros((2, 16), np.float32), 5)


def test_bad_options_name_the_option() -> None:
    gallery = clustered(ids=20, views=5)
    with pytest.raises(ReidError, match="unknown index kind 'ivv'.*did you mean 'ivf'"):
        build_index(gallery, "ivv")
    with pytest.raises(ReidError, match="--nlist 1000"):
        build_index(gallery, "ivf", nlist=1000)
    with pytest.raises(ReidError, match="--m 7"):
        build_index(clustered(), "ivfpq", m=7, progress=False)
    with pytest.raises(ReidError, match="ivfpq: needs at least"):
        build_index(gallery, "ivfpq")
    with pytest.raises(ReidError, match="--pca 32: must be between"):
        build_index(gallery, "hnsw", pca=32)
    with pytest.raises(ReidError, match="--pca: exact"):
        build_index(gallery, "flat", pca=8)
    with pytest.raises(ReidError, match="--nlist: does not apply to --kind hnsw"):
        build_index(gallery, "hnsw", nlist=8)
    with pytest.raises(ReidError, match="--rerank: does not apply to --kind ivf"):
        build_index(gallery, "ivf", rerank=3)


def test_saved_index_is_reused_then_rebuilt_when_features_change(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered())
    feats, meta = load_features(path)
    notes: list[str] = []
    built = load_or_build_index(path, "ivf", notice=notes.append, progress=False)
    assert built.kind == "ivf" and index_path(path).is_file()
    assert any("building" in n for n in notes)
    first_meta = read_index_meta(path)

    notes.clear()
    again = load_or_build_index(path, "auto", notice=notes.append, nprobe=3)
    assert again.kind == "ivf" and again.params["nprobe"] == 3 and not notes  # loaded, not rebuilt
    assert read_index_meta(path) == first_meta
    np.testing.assert_array_equal(again.search(feats[:5], 5)[1], built.search(feats[:5], 5)[1])

    save_gallery(tmp_path, clustered(seed=5))  # the features change under the index
    new_feats, _ = load_features(path)
    rebuilt = load_or_build_index(path, "auto", notice=notes.append, progress=False)
    assert any("other features" in n for n in notes)
    assert rebuilt.kind == "ivf"
    assert read_index_meta(path)["features_checksum"] != first_meta["features_checksum"]
    _, exact = exact_index(new_feats).search(new_feats[:5], 1)
    assert np.array_equal(rebuilt.search(new_feats[:5], 1)[1], exact)


def test_a_saved_index_is_replaced_only_when_asked(tmp_path: Path) -> None:
    """`search --index ivf` once silently replaced the HNSW index a user had built."""
    path = save_gallery(tmp_path, clustered())
    feats, meta = load_features(path)
    save_index(build_index(feats, "hnsw", progress=False), path, meta)
    hnsw_meta = read_index_meta(path)
    notes: list[str] = []
    ivf = load_or_build_index(path, "ivf", notice=notes.append, progress=False)
    assert ivf.kind == "ivf" and read_index_meta(path) == hnsw_meta  # used, not saved
    assert any("for this search only" in n and "--rebuild-index" in n for n in notes)
    assert load_or_build_index(path, "auto").kind == "hnsw"
    replaced = load_or_build_index(path, "ivf", rebuild=True, progress=False)
    assert replaced.kind == "ivf" and read_index_meta(path)["kind"] == "ivf"
    assert load_or_build_index(path, "auto", rebuild=True, progress=False).kind == "ivf"  # same kind, rebuilt
    assert ivf.describe() == {
        "kind": "ivf",
        "metric": "ip",
        "params": ivf.params,
        "distance": "1 - cosine similarity",
    }


def test_auto_without_saved_index_is_exact(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered(ids=10, views=3))
    searcher = load_or_build_index(path, "auto")
    assert searcher.kind == "flat" and searcher.index is None
    assert not index_path(path).exists()


def test_ivfpq_reranks_with_exact_vectors_after_reload(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered())
    feats, meta = load_features(path)
    built = build_index(feats, "ivfpq", m=8, progress=False)
    save_index(built, path, meta)
    loaded = load_or_build_index(path, "ivfpq")
    assert loaded.vectors is not None
    distances, indices = loaded.search(feats[:3], 4)
    expected_d, expected_i = _brute_force(feats[:3], feats, 4, "ip")
    np.testing.assert_array_equal(indices[:, 0], expected_i[:, 0])
    np.testing.assert_allclose(distances[:, 0], expected_d[:, 0], atol=1e-5)


def test_pca_index_round_trip_reranks_exactly(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered())
    feats, meta = load_features(path)
    save_index(build_index(feats, "hnsw", pca=12, progress=False), path, meta)
    loaded = load_or_build_index(path, "auto", ef_search=80)
    assert loaded.reranked and loaded.params["pca"] == 12 and loaded.params["ef_search"] == 80
    distances, indices = loaded.search(feats[:20], 5)
    expected_d, expected_i = _brute_force(feats[:20], feats, 5, "ip")
    assert np.mean(indices == expected_i) >= 0.95
    np.testing.assert_allclose(distances[:, 0], expected_d[:, 0], atol=1e-5)  # exact distances


def test_exact_search_needs_no_saved_index(tmp_path: Path) -> None:
    path = save_gallery(tmp_path, clustered(ids=5, views=2))
    feats, meta = load_features(path)
    with pytest.raises(ReidError, match="needs no saved index"):
        save_index(exact_index(feats), path, meta)


@pytest.mark.skipif(
    not Path("/proc/self/status").is_file(), reason="reads Linux's per-process memory counters"
)
@pytest.mark.slow
def test_a_memory_mapped_gallery_is_read_block_by_block_not_kept_resident(tmp_path: Path) -> None:
    """Checksum, NaN check and index build each pass over a 300 MB memory-mapped gallery; what
    the process holds resident afterwards stays far below the file (read through the mapping,
    every page read would stay resident: the whole file). Counted by the kernel, not timed."""
    import subprocess
    import sys

    rows, dim = 300_000, 256
    path = tmp_path / "gallery.npy"
    gallery = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    generator = np.random.default_rng(0)
    for start in range(0, rows, 50_000):
        gallery[start : start + 50_000] = generator.standard_normal((50_000, dim), dtype=np.float32)
    gallery.flush()
    del gallery
    script = (
        "import sys, numpy as np\n"
        "from reid_stra.retrieval.features import array_checksum, nonfinite_rows\n"
        "from reid_stra.retrieval.index import build_index\n"
        "def resident_mb():\n"
        "    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "    return sum(int(fields[k].split()[0]) for k in ('RssFile', 'RssAnon')) // 1024\n"
        "features = np.load(sys.argv[1], mmap_mode='r')\n"
        "before = resident_mb()\n"
        "array_checksum(features); nonfinite_rows(features)\n"
        "build_index(features, 'ivfpq', nlist=64, progress=False)  # 16 bytes a vector: the index is small\n"
        "print(resident_mb() - before)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True, timeout=600
    )
    grown_mb = int(result.stdout.split()[-1])
    assert grown_mb < 150, f"{grown_mb} MB resident after reading a {path.stat().st_size >> 20} MB file"


def test_library_calls_keep_the_callers_faiss_thread_count() -> None:
    """Only the CLI sets FAISS's threads (once per command); a program's own setting stays."""
    import faiss

    before = faiss.omp_get_max_threads()
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((300, 16)).astype(np.float32)
    try:
        faiss.omp_set_num_threads(1)
        knn(gallery[:5], gallery, 3)
        build_index(gallery, kind="ivf", nlist=4, progress=False).search(gallery[:5], 3)
        exact_index(gallery).search(gallery[:5], 3)
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)


def test_gpu_build_trains_the_kmeans_through_faiss_gpu_and_saves_a_cpu_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wiring of ``--device cuda`` (no GPU here): FAISS's GPU copy is stood in for by the CPU
    index itself, so the build must equal the CPU build and ask for exactly one GPU copy."""
    import faiss

    gallery = clustered(ids=60, views=5, dim=16)
    copies: list = []

    def to_gpus(index):
        copies.append(index)
        return index

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpus)
    on_gpu = build_index(gallery, kind="ivf", nlist=8, gpu=True, progress=False)
    on_cpu = build_index(gallery, kind="ivf", nlist=8, progress=False)
    assert [(c.d, c.ntotal) for c in copies] == [(16, 8)]  # the k-means ran on it: it holds 8 centres
    assert faiss.extract_index_ivf(on_gpu.index).clustering_index is None  # nothing GPU is saved
    np.testing.assert_array_equal(on_gpu.search(gallery[:20], 5)[1], on_cpu.search(gallery[:20], 5)[1])


def test_gpu_build_without_faiss_gpu_or_for_another_kind_is_a_clear_error(cli, tmp_path: Path) -> None:
    from tests.helpers.robust import assert_clean_error

    features = save_gallery(tmp_path, clustered(ids=20, views=5, dim=16))
    assert_clean_error(cli("index", "build", features, "--kind", "ivf", "--device", "cuda"), "faiss-gpu")
    assert_clean_error(cli("index", "build", features, "--kind", "hnsw", "--device", "cuda"), "ivf")
    assert_clean_error(cli("index", "build", features, "--device", "tpu"), "--device tpu")
    auto = cli("index", "build", features, "--kind", "ivf", "--nlist", "4", "--device", "auto")
    assert auto.exit_code == 0, auto.stderr  # auto: the CPU where FAISS sees no GPU
