"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from k-nearest-neighbour lists.

The published algorithm (torchreid's ``re_ranking``, kept in :mod:`reid_stra.metrics.reference`)
builds dense N x N matrices, N = queries + gallery: 35 GB of float32 for MSMT17. Everything it
needs is local, though: each item's k1+1 nearest neighbours (FAISS), its largest distance (for
the row normalization) and the weights V over its k-reciprocal expansion set, a sparse matrix
with a few dozen entries per row. The Jaccard term between a query and a gallery item is non-zero
only where their V rows overlap, so the final distances are produced chunk by chunk of queries:
``lambda * d(q, g)^2 / max_j d(q, j)^2 + (1 - lambda) * jaccard(q, g)``, exactly the dense result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from reid_stra.errors import ReidError
from reid_stra.metrics.distance import iter_distance_chunks, pair_distances
from reid_stra.metrics.neighbors import farthest_distances, nearest_neighbors

_ROWS_PER_STEP = 512  # rows of neighbour-list work vectorized at once (bounds temporary memory)


@dataclass(frozen=True)
class RerankSettings:
    """k-reciprocal re-ranking's parameters, with the paper's values as defaults."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3

    def __post_init__(self) -> None:
        check_rerank_params(self.k1, self.k2, self.lambda_value)


def check_rerank_params(k1: int, k2: int, lambda_value: float) -> None:
    if k1 < 1:
        raise ReidError(f"--k1 {k1}: must be at least 1 (the paper uses 20)")
    if k2 < 1:
        raise ReidError(f"--k2 {k2}: must be at least 1 (the paper uses 6)")
    if not 0.0 <= lambda_value <= 1.0:
        raise ReidError(f"--lambda {lambda_value}: must be between 0 and 1 (the paper uses 0.3)")


def k_reciprocal_distance_chunks(
    query: torch.Tensor,
    gallery: torch.Tensor,
    metric: str,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, re-ranked distances)`` for consecutive blocks of query rows.

    ``query``/``gallery`` are prepared features (:func:`reid_stra.metrics.distance.prepare_pair`);
    distances are those of ``metric``, clamped at 0 (rounding can make them slightly negative).
    """
    check_rerank_params(k1, k2, lambda_value)
    features = torch.cat([query, gallery]).float()
    num_query, total = len(query), len(features)
    neighbours, _ = nearest_neighbors(features, max(k1 + 1, k2), metric)
    row_max = (np.maximum(farthest_distances(features, metric), np.finfo(np.float32).tiny) ** 2).astype(
        np.float32
    )
    weights = _k_reciprocal_weights(features, neighbours, row_max, k1, metric)
    if k2 != 1:
        weights = _local_query_expansion(weights, neighbours[:, :k2], total)
    query_rows = weights[:num_query].tocsr()
    gallery_columns = weights[num_query:].tocsc()  # column k -> the gallery items that weigh k
    for start, block in iter_distance_chunks(query, gallery, metric, device=device, chunk_size=chunk_size):
        stop = start + len(block)
        final = np.maximum(block, 0.0, out=block)  # float32 in place, like the reference
        final *= final
        final /= row_max[start:stop, None]  # the original distance term
        final *= lambda_value
        final += 1.0 - lambda_value  # Jaccard distance 1 where the V rows do not overlap ...
        overlap = _min_overlap(query_rows[start:stop], gallery_columns).ravel()
        touched = np.flatnonzero(overlap)  # ... and 1 - o / (2 - o) where they do
        shared = overlap[touched]
        final.ravel()[touched] -= ((1.0 - lambda_value) * shared / (2.0 - shared)).astype(np.float32)
        yield start, final


def _mutual(neighbours: np.ndarray) -> np.ndarray:
    """``mask[i, a]``: item i is among the neighbours of its a-th neighbour (k-reciprocal)."""
    mask = np.zeros(neighbours.shape, dtype=bool)
    for start in range(0, len(neighbours), _ROWS_PER_STEP):
        rows = np.arange(start, min(start + _ROWS_PER_STEP, len(neighbours)))
        back = neighbours[neighbours[rows]]  # (rows, k, k): neighbours of each neighbour
        mask[rows] = (back == rows[:, None, None]).any(axis=2)
    return mask


def _k_reciprocal_weights(
    features: torch.Tensor, neighbours: np.ndarray, row_max: np.ndarray, k1: int, metric: str
) -> sp.csr_matrix:
    """The sparse V: Gaussian weights of each item's expanded k-reciprocal set, rows sum to 1."""
    total = len(features)
    near = neighbours[:, : k1 + 1]
    half = neighbours[:, : int(np.around(k1 / 2.0)) + 1]
    near_mutual = _mutual(near)
    half_mutual = _mutual(half)
    keys = []
    for start in range(0, total, _ROWS_PER_STEP):
        rows = np.arange(start, min(start + _ROWS_PER_STEP, total))
        ids, in_set = near[rows], near_mutual[rows]  # R(i): ids[in_set]
        cand_ids, cand_in = half[ids], half_mutual[ids]  # R(c, k1/2) of every candidate c
        shared = (cand_ids[..., None] == ids[:, None, None, :]) & in_set[:, None, None, :]
        overlap = (shared.any(axis=3) & cand_in).sum(axis=2)
        accept = in_set & (overlap > 2.0 / 3 * cand_in.sum(axis=2))
        row_of = np.broadcast_to(rows[:, None], ids.shape)
        cand_rows = np.broadcast_to(rows[:, None, None], cand_ids.shape)
        extra = accept[..., None] & cand_in
        keys.append(row_of[in_set] * total + ids[in_set])
        keys.append(cand_rows[extra] * total + cand_ids[extra])
    keys = np.unique(np.concatenate(keys))  # sorted: row-major, ascending columns
    rows, cols = np.divmod(keys, total)
    original = np.empty(len(keys), dtype=np.float64)
    step = _ROWS_PER_STEP * 64
    for start in range(0, len(keys), step):
        r, c = torch.from_numpy(rows[start : start + step]), torch.from_numpy(cols[start : start + step])
        pairs = pair_distances(features[r], features[c], metric)
        original[start : start + step] = pairs.clamp_(min=0).numpy()
    weight = np.exp(-(original**2) / row_max[rows])
    weight /= np.bincount(rows, weights=weight, minlength=total)[rows]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=total))])
    return sp.csr_matrix((weight.astype(np.float32), cols, indptr), shape=(total, total))


def _local_query_expansion(weights: sp.csr_matrix, neighbours: np.ndarray, total: int) -> sp.csr_matrix:
    """Replace each row of V by the mean of its k2 nearest items' rows (the paper's local QE)."""
    count = neighbours.shape[1]
    rows = np.repeat(np.arange(total), count)
    averaging = sp.csr_matrix(
        (np.full(rows.size, 1.0 / count, dtype=np.float32), (rows, neighbours.ravel())), shape=(total, total)
    )
    return (averaging @ weights).tocsr()


def _min_overlap(query_rows: sp.csr_matrix, gallery_columns: sp.csc_matrix) -> np.ndarray:
    """``sum_k min(V[q, k], V[g, k])`` for every query row and gallery item (dense block)."""
    num_rows, num_gallery = query_rows.shape[0], gallery_columns.shape[0]
    query_rows = query_rows.tocsr()
    entry_row = np.repeat(np.arange(num_rows), np.diff(query_rows.indptr))
    column = query_rows.indices
    col_start = gallery_columns.indptr[column]
    col_len = gallery_columns.indptr[column + 1] - col_start
    entry = np.repeat(np.arange(len(column)), col_len)
    offsets = np.arange(int(col_len.sum())) - np.repeat(np.cumsum(col_len) - col_len, col_len)
    position = np.repeat(col_start, col_len) + offsets
    mins = np.minimum(query_rows.data[entry], gallery_columns.data[position]).astype(np.float64)
    flat = entry_row[entry] * num_gallery + gallery_columns.indices[position]
    return np.bincount(flat, weights=mins, minlength=num_rows * num_gallery).reshape(num_rows, num_gallery)


def jaccard_distance_graph(
    features: torch.Tensor,
    *,
    k1: int = 30,
    k2: int = 6,
    max_distance: float = 1.0,
    metric: str = "cosine",
    rows_per_step: int | None = None,
) -> sp.csr_matrix:
    """k-reciprocal Jaccard distances among ``features``, kept where below ``max_distance``.

    The Jaccard term of :func:`k_reciprocal_distance_chunks` between every pair of items of one
    set (what clustering-based adaptation clusters on, as SpCL and Cluster Contrast do). A pair
    whose expanded k-reciprocal sets do not overlap is at distance 1 and is never stored, and
    neither is one at or beyond ``max_distance`` (a density clustering with radius ``eps`` needs
    nothing further away): memory is the kept pairs plus one block of ``rows_per_step`` x N,
    never N x N. The diagonal (distance 0) is stored. ``features`` are prepared as for
    re-ranking (unit vectors for ``"cosine"``).
    """
    total = len(features)
    kept_rows, kept_cols, kept_values = [], [], []
    for start, distance in _jaccard_blocks(features, k1, k2, metric, rows_per_step):
        row, col = np.nonzero(distance < max_distance)
        kept_rows.append(row + start)
        kept_cols.append(col)
        kept_values.append(distance[row, col].astype(np.float32))
    graph = sp.csr_matrix(
        (np.concatenate(kept_values), (np.concatenate(kept_rows), np.concatenate(kept_cols))),
        shape=(total, total),
    )
    graph.sort_indices()
    return graph


def jaccard_density_radius(
    features: torch.Tensor,
    *,
    top_fraction: float,
    k1: int = 30,
    k2: int = 6,
    metric: str = "cosine",
    rows_per_step: int | None = None,
) -> float:
    """The mean of the smallest ``top_fraction`` of all pairwise Jaccard distances among ``features``.

    UDAP's clustering radius (Song et al., "Unsupervised domain adaptive re-identification: theory
    and practice", Pattern Recognition 2020): DBSCAN's ``eps`` read from the data's own density
    instead of fixed, so that weak features on unfamiliar cameras are not chained into one giant
    cluster. Each unordered pair counts once and pairs at distance 0 (duplicates) are left out as
    UDAP does; pairs with no shared neighbours are at distance 1. Streams the same blocks as
    :func:`jaccard_distance_graph` and keeps only the smallest values, so memory stays bounded.
    """
    if not 0.0 < top_fraction < 1.0:
        raise ReidError(f"top_fraction {top_fraction}: a fraction of all pairs, between 0 and 1")
    total = len(features)
    pairs = total * (total - 1) // 2
    bound = max(1, round(top_fraction * pairs))  # never fewer than wanted below
    smallest, zeros = np.zeros(0, dtype=np.float64), 0
    for start, distance in _jaccard_blocks(features, k1, k2, metric, rows_per_step):
        upper = distance[np.arange(total)[None, :] > np.arange(start, start + len(distance))[:, None]]
        zeros += int(np.count_nonzero(upper == 0.0))
        smallest = np.concatenate([smallest, upper[(upper > 0.0) & (upper < 1.0)]])
        if len(smallest) > bound:
            smallest = np.partition(smallest, bound - 1)[:bound]
    wanted = max(1, round(top_fraction * (pairs - zeros)))
    smallest = np.sort(smallest)[:wanted]
    missing = wanted - len(smallest)  # not enough overlapping pairs: the rest are at distance 1
    return float((smallest.sum() + missing) / wanted)


def _jaccard_blocks(
    features: torch.Tensor, k1: int, k2: int, metric: str, rows_per_step: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows x N Jaccard distances)`` blocks; the diagonal set to 0."""
    check_rerank_params(k1, k2, 0.0)
    features = features.float()
    total = len(features)
    neighbours, _ = nearest_neighbors(features, min(total, max(k1 + 1, k2)), metric)
    row_max = (np.maximum(farthest_distances(features, metric), np.finfo(np.float32).tiny) ** 2).astype(
        np.float32
    )
    weights = _k_reciprocal_weights(features, neighbours, row_max, min(k1, total - 1), metric)
    if k2 != 1:
        weights = _local_query_expansion(weights, neighbours[:, :k2], total)
    rows_csr, columns = weights.tocsr(), weights.tocsc()
    step = rows_per_step or max(1, (1 << 22) // max(total, 1))  # a block of at most ~32 MB (float64)
    for start in range(0, total, step):
        stop = min(start + step, total)
        overlap = _min_overlap(rows_csr[start:stop], columns)
        distance = np.maximum(1.0 - overlap / (2.0 - overlap), 0.0)  # rounding: overlap can pass 1
        distance[np.arange(stop - start), np.arange(start, stop)] = 0.0
        yield start, distance
