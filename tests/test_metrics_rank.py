"""The ranking protocol (docs/EVAL_PROTOCOL): hand-computed cases, the reference, edge cases, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reid_stra
from reid_stra.errors import ReidError
from reid_stra.metrics import rank as rank_module
from reid_stra.metrics.rank import RankAccumulator, evaluate_rank
from reid_stra.metrics.reference import reference_evaluate_rank

# One query (person 1, camera 1); positives (person 1, other cameras) at ranks 2 and 4.
Q_PIDS, Q_CAMS = np.array([1]), np.array([1])
G_PIDS = np.array([2, 1, 3, 1, 4])
G_CAMS = np.array([2, 2, 2, 3, 2])
DIST = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])


def test_public_entry_point() -> None:
    assert reid_stra.evaluate_rank is evaluate_rank


def test_standard_ap_cmc_inp_by_hand() -> None:
    out = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    assert out["mode"] == "standard"
    assert out["mAP"] == pytest.approx(0.5)  # (1/2 + 2/4) / 2
    assert out["mINP"] == pytest.approx(0.5)  # 2 positives / last at rank 4
    np.testing.assert_allclose(out["cmc"], [0, 1, 1, 1, 1])
    assert (out["rank1"], out["rank5"]) == (0.0, 1.0)
    assert out["first_hit"].tolist() == [2]
    assert out["num_positives"].tolist() == [2]
    assert (out["num_valid"], out["num_invalid"], out["num_queries"]) == (1, 0, 1)


def test_market_official_trapezoid_ap_by_hand() -> None:
    out = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, mode="market_official")
    # i=0 at r=1: (0/1 + 1/2)/2; i=1 at r=3: (1/3 + 2/4)/2; mean over 2 positives = 1/3.
    assert out["mAP"] == pytest.approx(1 / 3)
    assert out["mode"] == "market_official"
    assert out["rank1"] == 0.0 and out["cmc"][1] == 1.0


def test_trapezoid_first_positive_at_rank_one_counts_precision_one() -> None:
    out = evaluate_rank(np.array([[0.1, 0.2]]), [1], [1, 2], [1], [2, 2], mode="market_official")
    assert out["mAP"] == pytest.approx(1.0)  # i/r := 1 at r = 0


def test_market_official_never_above_standard() -> None:
    rng = np.random.default_rng(5)
    dist = rng.random((40, 120))
    args = (rng.integers(0, 8, 40), rng.integers(0, 8, 120), rng.integers(0, 3, 40), rng.integers(0, 3, 120))
    standard = evaluate_rank(dist, *args)
    official = evaluate_rank(dist, *args, mode="market_official")
    valid = ~np.isnan(standard["ap"])
    assert np.all(official["ap"][valid] <= standard["ap"][valid] + 1e-12)


def test_junk_and_same_camera_items_are_removed_at_metric_time() -> None:
    # Junk (-1) and a same-id same-camera item ahead of everything: both vanish from the list.
    g_pids = np.concatenate([[-1, 1, -1], G_PIDS])
    g_cams = np.concatenate([[2, 1, 1], G_CAMS])
    dist = np.concatenate([[[0.0, 0.01, 0.05]], DIST], axis=1)
    with_junk = evaluate_rank(dist, Q_PIDS, g_pids, Q_CAMS, g_cams, max_rank=5)
    plain = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    for key in ("mAP", "mINP", "rank1"):
        assert with_junk[key] == plain[key]
    np.testing.assert_array_equal(with_junk["cmc"], plain["cmc"])


def test_same_camera_items_of_other_people_stay_as_negatives() -> None:
    dist = np.array([[0.0, 0.1]])
    out = evaluate_rank(dist, [1], [7, 1], [1], [1, 2])  # person 7 in the query's camera ranks first
    assert out["first_hit"].tolist() == [2]
    assert out["mAP"] == pytest.approx(0.5)


def test_distractors_are_ordinary_negatives() -> None:
    out = evaluate_rank(np.array([[0.0, 0.1]]), [1], [0, 1], [1], [1, 2])
    assert out["first_hit"].tolist() == [2]


def test_invalid_queries_are_skipped_and_counted() -> None:
    q_pids, q_cams = np.array([1, 5, 9]), np.array([1, 1, 1])
    g_pids = np.concatenate([G_PIDS, [5]])
    g_cams = np.concatenate([G_CAMS, [1]])  # person 5 only in the query's own camera
    dist = np.vstack([np.append(DIST[0], 0.9)] * 3)
    out = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    assert (out["num_valid"], out["num_invalid"]) == (1, 2)
    assert out["mAP"] == pytest.approx(0.5)  # averages over the valid query only
    assert np.isnan(out["ap"][1:]).all() and np.isnan(out["inp"][1:]).all()
    assert out["first_hit"].tolist() == [2, -1, -1]
    official = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5, mode="market_official")
    assert official["mAP"] == pytest.approx((1 / 3) / 3)  # MATLAB: invalid queries count as 0
    assert official["rank5"] == pytest.approx(1 / 3)


def test_every_query_invalid_same_camera_says_why() -> None:
    with pytest.raises(ReidError, match="same camera"):
        evaluate_rank(np.zeros((2, 3)), [1, 2], [1, 2, 3], [1, 1], [1, 1, 1])


def test_every_query_invalid_no_shared_ids_says_why() -> None:
    with pytest.raises(ReidError, match="no query person id appears in the gallery"):
        evaluate_rank(np.zeros((2, 3)), [1, 2], [7, 8, 9], [1, 1], [2, 2, 2])


def test_every_query_junk_says_why() -> None:
    with pytest.raises(ReidError, match="-1"):
        evaluate_rank(np.zeros((1, 2)), [-1], [-1, 2], [1], [2, 2])


def test_list_shorter_than_max_rank_keeps_last_value() -> None:
    out = evaluate_rank(np.array([[0.3, 0.1, 0.2]]), [1], [1, 2, 3], [1], [2, 2, 2], max_rank=50)
    assert out["cmc"].shape == (50,)
    assert out["cmc"][:2].tolist() == [0.0, 0.0] and np.all(out["cmc"][2:] == 1.0)
    assert out["rank10"] == 1.0


def test_max_rank_below_ten_still_reports_rank10() -> None:
    out = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=1)
    assert out["cmc"].shape == (1,) and out["rank10"] == 1.0


def test_ties_are_broken_by_gallery_index() -> None:
    flat = np.zeros((1, 5))  # every distance equal: the list is the gallery order
    out = evaluate_rank(flat, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert out["mAP"] == pytest.approx(0.5) and out["first_hit"].tolist() == [2]
    reversed_gallery = evaluate_rank(flat, Q_PIDS, G_PIDS[::-1], Q_CAMS, G_CAMS[::-1])
    assert reversed_gallery["first_hit"].tolist() == [2]  # positives now at indices 1 and 3 of 5
    assert reversed_gallery["mAP"] == pytest.approx(0.5)


def test_similarity_ranks_by_decreasing_value() -> None:
    rng = np.random.default_rng(0)
    dist = rng.integers(0, 4, (12, 30)).astype(np.float32)
    args = (rng.integers(0, 4, 12), rng.integers(0, 4, 30), rng.integers(0, 2, 12), rng.integers(0, 2, 30))
    by_distance = evaluate_rank(dist, *args)
    by_similarity = evaluate_rank(-dist, *args, similarity=True)
    np.testing.assert_array_equal(by_distance["ap"], by_similarity["ap"])


def _random_problem(rng: np.random.Generator) -> tuple:
    num_q, num_g = int(rng.integers(1, 25)), int(rng.integers(1, 60))
    ids, cams = int(rng.integers(1, 7)), int(rng.integers(1, 4))
    dtype = rng.choice([np.float32, np.float64])
    dist = rng.integers(0, 5, (num_q, num_g)).astype(dtype)  # small integers: many ties
    return (
        dist,
        rng.integers(-1, ids, num_q),
        rng.integers(-1, ids, num_g),
        rng.integers(0, cams, num_q),
        rng.integers(0, cams, num_g),
    )


@pytest.mark.parametrize("mode", ["standard", "market_official"])
def test_equals_reference_on_random_problems_with_ties(mode: str) -> None:
    rng = np.random.default_rng(42)
    compared = 0
    for _ in range(250):
        problem = _random_problem(rng)
        max_rank = int(rng.integers(1, 70))
        try:
            expected = reference_evaluate_rank(*problem, max_rank=max_rank, mode=mode)
        except ValueError:  # the reference's "all queries invalid" assert
            with pytest.raises(ReidError):
                evaluate_rank(*problem, max_rank=max_rank, mode=mode)
            continue
        got = evaluate_rank(*problem, max_rank=max_rank, mode=mode)
        np.testing.assert_allclose(got["cmc"], expected["cmc"], rtol=0, atol=1e-6)
        assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
        assert got["mINP"] == pytest.approx(expected["mINP"], abs=1e-6)
        assert got["num_valid"] == expected["num_valid"]
        compared += 1
    assert compared > 100


@pytest.mark.parametrize("sort_limit", [0, 10**9])
def test_sorting_and_counting_paths_agree_with_reference(monkeypatch, sort_limit: int) -> None:
    monkeypatch.setattr(rank_module, "_SORT_MAX_CANDIDATES_PER_POSITIVE", sort_limit)
    rng = np.random.default_rng(7)
    dist = np.round(rng.random((60, 400)), 2).astype(np.float32)  # continuous-ish with ties
    args = (
        rng.integers(0, 20, 60),
        rng.integers(-1, 20, 400),
        rng.integers(0, 4, 60),
        rng.integers(0, 4, 400),
    )
    got = evaluate_rank(dist, *args)
    expected = reference_evaluate_rank(dist, *args)
    assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    np.testing.assert_allclose(got["cmc"], expected["cmc"], atol=1e-9)


def test_streamed_chunks_equal_one_call(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    dist = rng.random((50, 80))
    q_pids, g_pids = rng.integers(0, 6, 50), rng.integers(0, 6, 80)
    q_cams, g_cams = rng.integers(0, 3, 50), rng.integers(0, 3, 80)
    whole = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    accumulator = RankAccumulator(g_pids, g_cams)
    for start in range(0, 50, 7):
        accumulator.add(dist[start : start + 7], q_pids[start : start + 7], q_cams[start : start + 7])
    streamed = accumulator.result()
    for key in ("ap", "inp", "first_hit", "cmc"):
        np.testing.assert_array_equal(streamed[key], whole[key])
    monkeypatch.setattr(rank_module, "_CHUNK_ELEMENTS", 80 * 3)  # 3 rows per internal chunk
    np.testing.assert_array_equal(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)["ap"], whole["ap"])


def test_accepts_torch_tensors_and_leaves_input_untouched() -> None:
    dist = torch.tensor(DIST)
    out = evaluate_rank(dist, torch.tensor(Q_PIDS), G_PIDS.tolist(), Q_CAMS, G_CAMS)
    assert out["mAP"] == pytest.approx(0.5)
    np.testing.assert_array_equal(dist.numpy(), DIST)
    array = DIST.copy()
    evaluate_rank(array, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, similarity=True)
    np.testing.assert_array_equal(array, DIST)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q_pids": [1, 2]}, "q_pids has 2 entries but the distance matrix has 1 rows"),
        ({"g_pids": [1, 2]}, "g_pids has 2 entries but the distance matrix has 5 columns"),
        ({"g_camids": [1]}, "g_camids has 1 entries"),
        ({"q_camids": [1, 1]}, "q_camids has 2 entries"),
        ({"distmat": np.zeros(5)}, "2-D"),
        ({"distmat": np.zeros((0, 5))}, "empty"),
        ({"distmat": np.array([[0.1, np.nan, 0.3, 0.4, 0.5]])}, r"distmat\[0, 1\] is NaN"),
        ({"distmat": np.array([["a"] * 5])}, "expected numbers"),
        ({"q_pids": [1.5]}, "integer ids"),
        ({"mode": "market"}, "unknown evaluation mode 'market'"),
        ({"max_rank": 0}, "max_rank"),
    ],
)
def test_bad_inputs_raise_one_line_errors(kwargs: dict, message: str) -> None:
    args = {"distmat": DIST, "q_pids": Q_PIDS, "g_pids": G_PIDS, "q_camids": Q_CAMS, "g_camids": G_CAMS}
    args.update(kwargs)
    with pytest.raises(ReidError, match=message) as info:
        evaluate_rank(**args)
    assert "\n" not in str(info.value)
