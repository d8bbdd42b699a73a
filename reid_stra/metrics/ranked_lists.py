"""The ranked gallery of chosen queries under the evaluation protocol (for reports and pictures).

Same distances as :func:`~reid_stra.metrics.evaluation.evaluate_features` (without re-ranking or
query expansion), and the same exclusion: gallery images of the query's person seen by the
query's camera are left out, so the list shows what the metric scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reid_stra.metrics.distance import distance_block, prepare_pair


@dataclass(frozen=True)
class RankedList:
    """One query's top ``k`` gallery rows (closest first), their distances, and the 1-based rank
    of its first correct match in the whole filtered gallery (``None``: no correct match)."""

    query: int
    gallery: list[int]
    distances: list[float]
    first_hit: int | None


def ranked_lists(
    qf: Any,
    gf: Any,
    q_pids: Sequence[int],
    q_camids: Sequence[int],
    g_pids: Sequence[int],
    g_camids: Sequence[int],
    rows: Sequence[int],
    *,
    k: int = 10,
    metric: str = "euclidean",
    normalize: bool = True,
) -> list[RankedList]:
    """Ranked lists of the query ``rows``."""
    query, gallery = prepare_pair(qf, gf, metric, normalize)
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    chosen = np.asarray(list(rows), dtype=np.int64)
    if chosen.size == 0:
        return []
    distances = distance_block(query[torch.from_numpy(chosen)], gallery, metric).cpu().numpy()
    lists = []
    for row, dist in zip(chosen.tolist(), distances, strict=True):
        keep = ~((g_pids == q_pids[row]) & (g_camids == q_camids[row]))
        candidates = np.flatnonzero(keep)
        order = candidates[np.argsort(dist[candidates], kind="stable")]
        hits = np.flatnonzero(g_pids[order] == q_pids[row])
        lists.append(
            RankedList(
                query=int(row),
                gallery=[int(i) for i in order[:k]],
                distances=[float(dist[i]) for i in order[:k]],
                first_hit=int(hits[0]) + 1 if hits.size else None,
            )
        )
    return lists
