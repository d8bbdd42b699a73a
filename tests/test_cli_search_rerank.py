"""`reid-stra search --rerank`: the gallery ranked by k-reciprocal re-ranked distances (no labels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reid_stra.metrics.distance import distance_block, prepare_pair
from reid_stra.metrics.reference import reference_re_ranking
from reid_stra.retrieval.features import FeatureMeta, save_features
from tests.helpers.galleries import TOY_MODEL_INFO
from tests.helpers.robust import assert_clean_error

TOP_K = 6


@pytest.fixture
def features(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """12 people, 2 queries and 6 gallery crops each, spread widely around their centres (so
    re-ranking has neighbourhoods to correct)."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((12, 16))
    q_pids, g_pids = np.repeat(np.arange(12), 2), np.repeat(np.arange(12), 6)
    qf = (centres[q_pids] + 0.9 * rng.standard_normal((24, 16))).astype(np.float32)
    gf = (centres[g_pids] + 0.9 * rng.standard_normal((72, 16))).astype(np.float32)
    query, gallery = tmp_path / "query.npy", tmp_path / "gallery.npy"
    save_features(query, qf, FeatureMeta.from_model_info(TOY_MODEL_INFO, [f"q{i}.jpg" for i in range(24)]))
    save_features(gallery, gf, FeatureMeta.from_model_info(TOY_MODEL_INFO, [f"g{i}.jpg" for i in range(72)]))
    return query, gallery, qf, gf


def _ranked(cli, *args) -> list[list[int]]:
    result = cli("search", *args, "--top-k", TOP_K, "--json")
    assert result.exit_code == 0, result.stderr
    return [[m["index"] for m in r["matches"]] for r in json.loads(result.stdout)["results"]]


def test_rerank_ranks_by_the_reference_reranked_distances(cli, features) -> None:
    query, gallery, qf, gf = features
    q, g = prepare_pair(qf, gf, "euclidean", normalize=True)
    expected = reference_re_ranking(
        distance_block(q, g, "euclidean").numpy(),
        distance_block(q, q, "euclidean").numpy(),
        distance_block(g, g, "euclidean").numpy(),
        k1=20,
        k2=6,
        lambda_value=0.3,
    )
    got = _ranked(cli, "--query-features", query, "--gallery", gallery, "--rerank")
    assert got == np.argsort(expected, axis=1, kind="stable")[:, :TOP_K].tolist()
    plain = _ranked(cli, "--query-features", query, "--gallery", gallery)
    assert got != plain  # re-ranking changed some lists: the option is not ignored
    other = _ranked(cli, "--query-features", query, "--gallery", gallery, "--rerank", "--k1", 5)
    assert other != got  # and its parameters reach it


def test_rerank_bad_parameter_is_a_one_line_error(cli, features) -> None:
    query, gallery, *_ = features
    result = cli("search", "--query-features", query, "--gallery", gallery, "--rerank", "--lambda", 2)
    assert_clean_error(result, "--lambda")
