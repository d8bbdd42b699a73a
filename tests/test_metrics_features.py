"""Evaluation from features: chunked == dense, sparse re-ranking == dense, query expansion, models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.metrics.distance import distance_block, prepare_pair
from reid_stra.metrics.evaluation import evaluate_features
from reid_stra.metrics.query_expansion import query_expansion
from reid_stra.metrics.rank import evaluate_rank
from reid_stra.metrics.reference import reference_query_expansion, reference_re_ranking
from reid_stra.metrics.rerank import k_reciprocal_distance_chunks
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.evaluation import evaluate_model


def _clustered(seed: int = 0, num_q: int = 30, num_g: int = 120, ids: int = 12, dim: int = 16) -> tuple:
    """Features clustered by identity, with cameras, distractors (0) and junk (-1) in the gallery."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((ids, dim))
    q_pids, g_pids = rng.integers(1, ids, num_q), rng.integers(-1, ids, num_g)
    qf = (centers[q_pids] + 0.8 * rng.standard_normal((num_q, dim))).astype(np.float32)
    gf = (centers[np.abs(g_pids)] + 0.8 * rng.standard_normal((num_g, dim))).astype(np.float32)
    return qf, gf, q_pids, g_pids, rng.integers(1, 4, num_q), rng.integers(1, 4, num_g)


def _dense(query: torch.Tensor, gallery: torch.Tensor, metric: str) -> np.ndarray:
    return distance_block(query, gallery, metric).clamp(min=0).numpy()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_features_equal_dense_distmat(metric: str, normalize: bool) -> None:
    qf, gf, *ids = _clustered()
    query, gallery = prepare_pair(qf, gf, metric, normalize)
    dense = evaluate_rank(distance_block(query, gallery, metric).numpy(), *ids)
    chunked = evaluate_features(
        qf, gf, *ids, metric=metric, normalize=normalize, chunk_size=7, progress=False
    )
    for key in ("ap", "inp", "first_hit", "cmc"):
        np.testing.assert_array_equal(chunked[key], dense[key])
    assert chunked["metric"] == metric and chunked["rerank"] is False


def test_euclidean_is_torchreid_squared_distance() -> None:
    qf, gf, *_ = _clustered()
    query, gallery = prepare_pair(qf, gf, "euclidean", normalize=False)
    expected = torch.cdist(torch.from_numpy(qf).double(), torch.from_numpy(gf).double()) ** 2
    np.testing.assert_allclose(
        distance_block(query, gallery, "euclidean").numpy(), expected.numpy(), atol=1e-3
    )


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(("k1", "k2", "lam"), [(20, 6, 0.3), (5, 1, 0.5), (7, 3, 0.0)])
def test_sparse_rerank_equals_dense_reference(metric: str, k1: int, k2: int, lam: float) -> None:
    qf, gf, *ids = _clustered(seed=1)
    query, gallery = prepare_pair(qf, gf, metric, normalize=metric == "cosine")
    expected = reference_re_ranking(
        _dense(query, gallery, metric),
        _dense(query, query, metric),
        _dense(gallery, gallery, metric),
        k1,
        k2,
        lam,
    )
    chunks = k_reciprocal_distance_chunks(
        query, gallery, metric, k1=k1, k2=k2, lambda_value=lam, chunk_size=8
    )
    got = np.concatenate([block for _, block in chunks])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    reranked = evaluate_features(
        qf, gf, *ids, metric=metric, normalize=metric == "cosine", rerank=True, k1=k1, k2=k2,
        lambda_value=lam, progress=False,
    )  # fmt: skip
    dense_metrics = evaluate_rank(expected, *ids)
    assert reranked["mAP"] == pytest.approx(dense_metrics["mAP"], abs=1e-5)
    np.testing.assert_allclose(reranked["cmc"], dense_metrics["cmc"], atol=1e-5)


def test_rerank_helps_on_clustered_data() -> None:
    qf, gf, *ids = _clustered(seed=2, num_q=40, num_g=200)
    plain = evaluate_features(qf, gf, *ids, progress=False)
    reranked = evaluate_features(qf, gf, *ids, rerank=True, progress=False)
    assert reranked["mAP"] > plain["mAP"]


@pytest.mark.parametrize(("k", "alpha"), [(10, 3.0), (5, 0.0)])
def test_query_expansion_equals_fast_reid_aqe(k: int, alpha: float) -> None:
    qf, gf, *_ = _clustered(seed=3)
    expected_q, expected_g = reference_query_expansion(qf, gf, qe_k=k, alpha=alpha)
    got_q, got_g = query_expansion(torch.from_numpy(qf), torch.from_numpy(gf), k=k, alpha=alpha)
    np.testing.assert_allclose(got_q.numpy(), expected_q, atol=1e-5)
    np.testing.assert_allclose(got_g.numpy(), expected_g, atol=1e-5)


def test_query_expansion_with_only_itself_changes_nothing() -> None:
    qf, gf, *ids = _clustered(seed=4)
    plain = evaluate_features(qf, gf, *ids, progress=False)
    expanded = evaluate_features(qf, gf, *ids, qe=True, qe_k=1, progress=False)
    np.testing.assert_allclose(expanded["ap"], plain["ap"], atol=1e-6)
    better = evaluate_features(qf, gf, *ids, qe=True, qe_k=3, progress=False)
    assert better["qe_k"] == 3 and np.isfinite(better["mAP"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "manhattan"}, "unknown distance metric 'manhattan'"),
        ({"rerank": True, "k1": 0}, "--k1 0"),
        ({"rerank": True, "lambda_value": 2.0}, "--lambda 2.0"),
        ({"qe": True, "qe_k": 0}, "--qe-k 0"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    qf, gf, *ids = _clustered()
    with pytest.raises(ReidError, match=message):
        evaluate_features(qf, gf, *ids, progress=False, **kwargs)


def test_bad_features() -> None:
    qf, gf, q_pids, g_pids, q_cams, g_cams = _clustered()
    with pytest.raises(ReidError, match="query features are 16-d but gallery features are 8-d"):
        evaluate_features(qf, gf[:, :8], q_pids, g_pids, q_cams, g_cams, progress=False)
    with pytest.raises(ReidError, match="query person ids: got 29 ids for 30 feature rows"):
        evaluate_features(qf, gf, q_pids[:-1], g_pids, q_cams, g_cams, progress=False)
    broken = qf.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ReidError, match="row 3 holds NaN"):
        evaluate_features(broken, gf, q_pids, g_pids, q_cams, g_cams, progress=False)


class _ColourModel(nn.Module):
    """A tiny 'model': pooled colour statistics; enough to tell synthetic identities apart a bit."""

    pretrained_cfg = PretrainedCfg("colour", input_size=(64, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(1)


def test_evaluate_model_extracts_and_evaluates(synthetic_root) -> None:
    from reid_stra.data.datasets import load_dataset

    dataset = load_dataset("market1501", synthetic_root, splits=("query", "gallery"))
    model = _ColourModel().train()
    result = evaluate_model(model, dataset.query, dataset.gallery, workers=0, flip=True, progress=False)
    assert model.training  # the caller's mode is restored (the trainer validates mid-training)
    assert result["num_query_images"] == len(dataset.query)
    assert result["input_size"] == [64, 32] and result["flip"] is True
    assert 0.0 <= result["mAP"] <= 1.0 and result["num_valid"] > 0
    with pytest.raises(ReidError, match="empty split"):
        evaluate_model(model, [], dataset.gallery, progress=False)


def test_perfect_features_score_perfectly_on_real_market1501_ids(shared_dir) -> None:
    """Real Market-1501 ids, cameras, distractors and junk: identity features must give 1.0."""
    from reid_stra.data.datasets import load_dataset

    dataset = load_dataset(
        "market1501", shared_dir / "data" / "Market-1501-mini", splits=("query", "gallery")
    )
    q_pids = np.array([s.pid for s in dataset.query])
    g_pids = np.array([s.pid for s in dataset.gallery])
    ids = np.unique(np.concatenate([q_pids, g_pids]))
    onehot = np.eye(len(ids), dtype=np.float32)
    qf, gf = onehot[np.searchsorted(ids, q_pids)], onehot[np.searchsorted(ids, g_pids)]
    q_cams, g_cams = [s.camid for s in dataset.query], [s.camid for s in dataset.gallery]
    standard = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, progress=False)
    assert standard["mAP"] == pytest.approx(1.0) and standard["rank1"] == 1.0
    assert standard["num_valid"] + standard["num_invalid"] == len(dataset.query)
    official = evaluate_features(
        qf, gf, q_pids, g_pids, q_cams, g_cams, mode="market_official", progress=False
    )
    share_valid = standard["num_valid"] / len(dataset.query)  # MATLAB counts invalid queries as 0
    assert official["mAP"] == pytest.approx(share_valid) and official["rank1"] == pytest.approx(share_valid)


def test_eval_settings_hold_the_protocol_once() -> None:
    from reid_stra.metrics.evaluation import EvalSettings
    from reid_stra.metrics.rerank import RerankSettings

    defaults = EvalSettings()
    assert (defaults.k1, defaults.k2, defaults.lambda_value) == (20, 6, 0.3)
    assert (RerankSettings().k1, RerankSettings().lambda_value) == (defaults.k1, defaults.lambda_value)
    qf, gf, *ids = _clustered()
    by_object = evaluate_features(qf, gf, *ids, EvalSettings(rerank=True, k1=5), progress=False)
    by_values = evaluate_features(qf, gf, *ids, rerank=True, k1=5, progress=False)
    assert by_object["mAP"] == by_values["mAP"] and by_object["k1"] == 5
    replaced = evaluate_features(qf, gf, *ids, EvalSettings(rerank=True), k1=5, progress=False)
    assert replaced["k1"] == 5 and replaced["mAP"] == by_object["mAP"]
    with pytest.raises(ReidError, match="--mode"):
        EvalSettings(mode="cmc")
    with pytest.raises(ReidError, match="--max-rank 0"):
        EvalSettings(max_rank=0)
