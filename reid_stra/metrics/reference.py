"""Straightforward, slow implementations of the published algorithms: oracles, not tools.

The fast code in :mod:`reid_stra.metrics.rank`, :mod:`reid_stra.metrics.rerank` and
:mod:`reid_stra.metrics.query_expansion` is only trustworthy because tests compare it with these
line-by-line ports of what the community's numbers come from, and benchmarks time it against
them. Nothing in the toolkit calls this module: it materializes dense query x gallery (or N x N)
matrices and loops in Python on purpose.

- :func:`reference_evaluate_rank` follows torchreid's pure-Python ``eval_market1501`` (per-query
  argsort, removal, cumsum; mINP as fast-reid) and, for ``market_official``, a literal port of the
  Market-1501 MATLAB ``compute_AP`` loop. Junk (id -1) gallery items are removed as the protocol
  asks (a no-op on data without them, where it is exactly torchreid's code).
- :func:`reference_re_ranking` is torchreid's ``re_ranking`` (Zhong et al., CVPR 2017).
- :func:`reference_query_expansion` is fast-reid's ``aqe`` (alpha-weighted query expansion).
"""

from __future__ import annotations

import numpy as np


def reference_evaluate_rank(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    mode: str = "standard",
    stable: bool = True,
) -> dict:
    """Per-query argsort evaluation; ``stable=False`` is torchreid's (non-deterministic ties) sort."""
    num_q = distmat.shape[0]
    all_cmc, all_ap, all_inp = [], [], []
    num_valid = 0
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = np.argsort(distmat[q_idx], kind="stable" if stable else "quicksort")
        remove = ((g_pids[order] == q_pid) & (g_camids[order] == q_camid)) | (g_pids[order] == -1)
        keep = np.invert(remove)
        raw_cmc = (g_pids[order] == q_pid).astype(np.int32)[keep]
        if not np.any(raw_cmc):
            if mode == "market_official":
                all_cmc.append(np.zeros(max_rank, dtype=np.float64))
                all_ap.append(0.0)
                all_inp.append(0.0)
            continue
        num_valid += 1
        cmc = raw_cmc.cumsum()
        cmc[cmc > 1] = 1
        padded = np.ones(max_rank, dtype=np.float64)  # a short list keeps its last value (1)
        padded[: min(max_rank, len(cmc))] = cmc[:max_rank]
        all_cmc.append(padded)
        pos_idx = np.where(raw_cmc == 1)[0]
        all_inp.append(raw_cmc.sum() / (pos_idx.max() + 1.0))
        if mode == "market_official":
            all_ap.append(_matlab_compute_ap(raw_cmc))
        else:
            num_rel = raw_cmc.sum()
            tmp_cmc = raw_cmc.cumsum()
            tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
            tmp_cmc = np.asarray(tmp_cmc) * raw_cmc
            all_ap.append(tmp_cmc.sum() / num_rel)
    if num_valid == 0:
        raise ValueError("Error: all query identities do not appear in gallery")
    cmc = np.asarray(all_cmc).sum(0) / len(all_cmc)
    return {
        "cmc": cmc,
        "mAP": float(np.mean(all_ap)),
        "mINP": float(np.mean(all_inp)),
        "num_valid": num_valid,
    }


def _matlab_compute_ap(good_flags: np.ndarray) -> float:
    """Market-1501 ``compute_AP.m`` on a list that already has junk removed (trapezoid rule)."""
    ngood = int(good_flags.sum())
    old_recall, old_precision, ap, intersect_size = 0.0, 1.0, 0.0, 0
    for j, flag in enumerate(good_flags):
        if flag:
            intersect_size += 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        if intersect_size == ngood:
            break
    return ap


def reference_re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """torchreid's dense k-reciprocal re-ranking; returns the re-ranked query x gallery distances."""
    original_dist = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)],
        axis=0,
    )
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)

    query_num = q_g_dist.shape[0]
    all_num = q_g_dist.shape[0] + q_g_dist.shape[1]
    half = int(np.around(k1 / 2.0))
    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward = initial_rank[candidate, : half + 1]
            candidate_backward = initial_rank[candidate_forward, : half + 1]
            fi_candidate = np.where(candidate_backward == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward[fi_candidate]
            overlap = len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index))
            if overlap > 2.0 / 3 * len(candidate_k_reciprocal_index):
                k_reciprocal_expansion_index = np.append(
                    k_reciprocal_expansion_index, candidate_k_reciprocal_index
                )
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = 1.0 * weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(all_num)]
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, all_num], dtype=np.float32)
        ind_non_zero = np.where(V[i, :] != 0)[0]
        ind_images = [inv_index[ind] for ind in ind_non_zero]
        for j in range(len(ind_non_zero)):
            temp_min[0, ind_images[j]] = temp_min[0, ind_images[j]] + np.minimum(
                V[i, ind_non_zero[j]], V[ind_images[j], ind_non_zero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2.0 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def reference_query_expansion(
    query_feat: np.ndarray, gallery_feat: np.ndarray, qe_k: int = 10, alpha: float = 3.0, qe_times: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """fast-reid's ``aqe``: every feature becomes the sim^alpha-weighted mean of its top-k (self included)."""
    num_query = query_feat.shape[0]
    all_feat = np.concatenate([query_feat, gallery_feat]).astype(np.float32)
    norm_feat = all_feat / np.maximum(np.linalg.norm(all_feat, axis=1, keepdims=True), 1e-12)
    for _ in range(qe_times):
        all_feat_list = []
        sims = norm_feat @ norm_feat.T
        for sim in sims:
            init_rank = np.argpartition(-sim, range(1, qe_k + 1))
            weights = sim[init_rank[:qe_k]].reshape((-1, 1))
            weights = np.power(weights, alpha)
            all_feat_list.append(np.mean(all_feat[init_rank[:qe_k], :] * weights, axis=0))
        all_feat = np.stack(all_feat_list, axis=0)
        norm_feat = all_feat / np.maximum(np.linalg.norm(all_feat, axis=1, keepdims=True), 1e-12)
    return all_feat[:num_query], all_feat[num_query:]
