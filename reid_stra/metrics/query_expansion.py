"""Alpha-weighted query expansion (alpha-QE; average QE at alpha = 0), as fast-reid's ``aqe``.

Every feature, query and gallery alike, is replaced by the mean of its ``k`` nearest features
(itself included, by cosine similarity) weighted by ``similarity ** alpha``. The neighbour lists
come from FAISS, so memory is N x k instead of fast-reid's N x N similarity matrix.
"""

from __future__ import annotations

import torch

from reid_stra.errors import ReidError
from reid_stra.metrics.distance import l2_normalize
from reid_stra.metrics.neighbors import nearest_neighbors

_ROWS_PER_STEP = 4096  # rows whose k neighbour features are gathered at once


def check_qe_params(k: int, alpha: float, times: int = 1) -> None:
    if k < 1:
        raise ReidError(f"--qe-k {k}: must be at least 1 (fast-reid uses 10)")
    if alpha < 0:
        raise ReidError(f"--qe-alpha {alpha}: must be 0 (average QE) or more (fast-reid uses 3)")
    if times < 1:
        raise ReidError(f"query expansion times {times}: must be at least 1")


def query_expansion(
    query: torch.Tensor, gallery: torch.Tensor, *, k: int = 10, alpha: float = 3.0, times: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expanded (query, gallery) features; apply the metric's normalization afterwards.

    Weights are ``s ** alpha`` for integer alpha (negative similarities keep their sign, as in
    fast-reid) and ``max(s, 0) ** alpha`` otherwise (a fractional power of a negative is undefined).
    """
    check_qe_params(k, alpha, times)
    features = torch.cat([query, gallery]).float()
    for _ in range(times):
        unit = l2_normalize(features)
        neighbours, distances = nearest_neighbors(unit, k, "cosine")
        similarity = torch.from_numpy(1.0 - distances).float()
        if float(alpha).is_integer():
            weights = similarity.pow(int(alpha))
        else:
            weights = similarity.clamp(min=0).pow(alpha)
        index = torch.from_numpy(neighbours)
        expanded = torch.empty_like(features)
        for start in range(0, len(features), _ROWS_PER_STEP):
            stop = start + _ROWS_PER_STEP
            gathered = features[index[start:stop]]  # (rows, k, D)
            expanded[start:stop] = (gathered * weights[start:stop, :, None]).mean(dim=1)
        features = expanded
    return features[: len(query)], features[len(query) :]
