"""Property-based checks of the name parser, the ranking metric and the feature-file reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reid_stra.data.datasets import parse_market_name
from reid_stra.errors import ReidError
from reid_stra.metrics.rank import evaluate_rank
from reid_stra.retrieval.features import FeatureMeta, load_features, save_features

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    pid=st.integers(-1, 9999),
    camid=st.integers(1, 99),
    rest=st.from_regex(r"s\d_\d{6}_\d{2}", fullmatch=True),
)
def test_market_names_round_trip(pid: int, camid: int, rest: str) -> None:
    name = f"{pid:04d}_c{camid}{rest}.jpg" if pid >= 0 else f"-1_c{camid}{rest}.jpg"
    assert parse_market_name(name) == (pid, camid)


@SETTINGS
@given(name=st.text(min_size=1, max_size=30))
def test_any_other_name_parses_or_fails_cleanly(name: str) -> None:
    try:
        pid, camid = parse_market_name(name + ".jpg")
    except ReidError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(pid, int) and isinstance(camid, int)


@st.composite
def ranking_problems(draw):
    num_q, num_g = draw(st.integers(1, 6)), draw(st.integers(2, 20))
    q_pids = np.array(draw(st.lists(st.integers(1, 4), min_size=num_q, max_size=num_q)))
    g_pids = np.array(draw(st.lists(st.integers(1, 4), min_size=num_g, max_size=num_g)))
    q_cams = np.ones(num_q, dtype=int)
    g_cams = np.array(draw(st.lists(st.integers(1, 3), min_size=num_g, max_size=num_g)))
    values = draw(st.lists(st.integers(0, 1000), min_size=num_q * num_g, max_size=num_q * num_g, unique=True))
    distmat = np.array(values, dtype=np.float64).reshape(num_q, num_g)
    return distmat, q_pids, g_pids, q_cams, g_cams


def _evaluate(problem):
    try:
        return evaluate_rank(*problem, max_rank=5)
    except ReidError:
        return None  # no query has a valid match: a clean, documented refusal


@SETTINGS
@given(problem=ranking_problems(), seed=st.integers(0, 2**16))
def test_metric_invariants(problem, seed: int) -> None:
    result = _evaluate(problem)
    if result is None:
        return
    assert 0.0 <= result["mAP"] <= 1.0 and 0.0 <= result["mINP"] <= 1.0
    cmc = np.asarray(result["cmc"])
    assert np.all(np.diff(cmc) >= -1e-12) and np.all((cmc >= 0) & (cmc <= 1))
    # Permuting the gallery changes nothing (distances are distinct, so ranks are unambiguous).
    distmat, q_pids, g_pids, q_cams, g_cams = problem
    order = np.random.default_rng(seed).permutation(len(g_pids))
    permuted = evaluate_rank(distmat[:, order], q_pids, g_pids[order], q_cams, g_cams[order], max_rank=5)
    assert permuted["mAP"] == pytest.approx(result["mAP"])
    np.testing.assert_allclose(permuted["cmc"], cmc)
    # An extra gallery item farther than all others (an impostor) changes neither CMC nor mAP.
    far = np.hstack([distmat, np.full((len(q_pids), 1), distmat.max() + 1)])
    extended = evaluate_rank(far, q_pids, np.append(g_pids, 99), q_cams, np.append(g_cams, 2), max_rank=5)
    np.testing.assert_allclose(extended["cmc"], cmc)
    assert extended["mAP"] == pytest.approx(result["mAP"])


@SETTINGS
@given(
    rows=st.integers(1, 6),
    dim=st.integers(1, 8),
    seed=st.integers(0, 1000),
    cut=st.floats(0.0, 0.999),
)
def test_feature_reader_round_trip_and_truncation(
    tmp_path: Path, rows: int, dim: int, seed: int, cut: float
) -> None:
    array = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    path = tmp_path / f"f_{rows}_{dim}_{seed}.npy"
    save_features(path, array, FeatureMeta(paths=[f"{i:04d}_c1s1_000001_00.jpg" for i in range(rows)]))
    loaded, meta = load_features(path)
    np.testing.assert_array_equal(loaded, array)
    assert meta.count == rows and meta.embedding_dim == dim
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])  # any truncation: a clean error, never bad rows
    with pytest.raises(ReidError, match=str(path.name)):
        load_features(path)
