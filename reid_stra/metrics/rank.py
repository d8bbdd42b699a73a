"""The re-ID ranking protocol (CMC, mAP, mINP), fast and memory-bounded.

Rules: ``docs/EVAL_PROTOCOL`` (torchreid / fast-reid "standard" mode and the original Market-1501
"market_official" mode). A query's metrics depend only on the *positions of its positives* in its
filtered ranked list, and the position of a positive is the number of valid gallery items that
rank before it: smaller distance, or equal distance and smaller gallery index (the deterministic
tie break). So we never argsort a whole row: per query we keep the items no farther than its
farthest positive (usually a small fraction of the gallery) and either sort just those or count,
per positive, the items before it. Rows are processed in chunks, so memory is bounded by the
chunk, not by query x gallery, and :class:`RankAccumulator` lets callers feed distance chunks
computed on the fly (see :func:`reid_stra.metrics.evaluation.evaluate_features`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reid_stra.errors import ReidError, unknown_name_error

MODES = ("standard", "market_official")
JUNK_PID = -1
# Per query: sort the candidate items when there are few of them relative to the positives,
# otherwise count the items before each positive (one vectorized pass per positive).
_SORT_MAX_CANDIDATES_PER_POSITIVE = 200
_CHUNK_ELEMENTS = 1 << 23  # rows per chunk x gallery: bounds the NaN check and int->float copies


def evaluate_rank(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
    mode: str = "standard",
    *,
    similarity: bool = False,
) -> dict[str, Any]:
    """Evaluate a query x gallery distance matrix under the re-ID protocol.

    ``similarity=True`` ranks by decreasing value instead (a similarity matrix). Returns a dict:
    ``cmc`` (float64 array of length ``max_rank``), ``rank1``/``rank5``/``rank10``, ``mAP``, ``mINP``,
    ``num_queries``, ``num_valid``, ``num_invalid``, ``mode``, ``max_rank`` and per-query arrays
    ``ap``, ``inp`` (NaN for invalid queries), ``first_hit`` (1-based rank of the first positive,
    -1 for invalid) and ``num_positives``. Raises :class:`ReidError` on inconsistent inputs and
    when no query has a positive (with the reason).
    """
    dist = _as_matrix(distmat)
    num_q, num_g = dist.shape
    q_pids = _as_ids(q_pids, "q_pids", num_q, "rows (queries)")
    q_camids = _as_ids(q_camids, "q_camids", num_q, "rows (queries)")
    accumulator = RankAccumulator(g_pids, g_camids, max_rank=max_rank, mode=mode, num_gallery=num_g)
    rows = max(1, _CHUNK_ELEMENTS // max(num_g, 1))
    for start in range(0, num_q, rows):
        stop = min(start + rows, num_q)
        accumulator.add(dist[start:stop], q_pids[start:stop], q_camids[start:stop], similarity=similarity)
    return accumulator.result()


class RankAccumulator:
    """Evaluate queries chunk by chunk against one fixed gallery; :meth:`result` summarizes.

    Holds only per-query numbers between chunks, so a caller can stream distance chunks of any
    size (computed from features, re-ranked, ...) without ever holding query x gallery.
    """

    def __init__(
        self,
        g_pids: Any,
        g_camids: Any,
        *,
        max_rank: int = 50,
        mode: str = "standard",
        num_gallery: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise unknown_name_error("evaluation mode", str(mode), MODES)
        if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
            raise ReidError(f"max_rank: expected a positive integer, got {max_rank!r}; use e.g. 50")
        what = "columns (gallery items)"
        self.g_pids = _as_ids(g_pids, "g_pids", num_gallery, what)
        self.num_gallery = len(self.g_pids)
        if self.num_gallery == 0:
            raise ReidError("gallery is empty; evaluation needs at least one gallery item")
        self.g_camids = _as_ids(g_camids, "g_camids", self.num_gallery, what)
        self.mode = mode
        self.max_rank = int(max_rank)
        # Gallery indices grouped by person id (ascending indices inside each group).
        order = np.argsort(self.g_pids, kind="stable")
        self._group_order = order
        self._group_pids, self._group_starts, self._group_sizes = np.unique(
            self.g_pids[order], return_index=True, return_counts=True
        )
        self._q_pids: list[np.ndarray] = []
        self._q_camids: list[np.ndarray] = []
        self._ap: list[np.ndarray] = []
        self._inp: list[np.ndarray] = []
        self._first: list[np.ndarray] = []
        self._npos: list[np.ndarray] = []
        self._valid = self.g_pids != JUNK_PID  # per query, its same-id same-camera items go too

    def add(
        self,
        distances: Any,
        q_pids: Any,
        q_camids: Any,
        *,
        similarity: bool = False,
    ) -> None:
        """Evaluate a chunk of query rows (B x gallery); the chunk is only read, never modified."""
        dist = _as_matrix(distances)
        if dist.shape[1] != self.num_gallery:
            raise ReidError(
                f"distance chunk has {dist.shape[1]} columns but the gallery has {self.num_gallery} "
                "items; pass one column per gallery item"
            )
        count = dist.shape[0]
        q_pids = _as_ids(q_pids, "q_pids", count, "rows (queries)")
        q_camids = _as_ids(q_camids, "q_camids", count, "rows (queries)")
        if dist.dtype not in (np.float32, np.float64):  # ints, float16: exact in float64
            dist = dist.astype(np.float64)
        _check_no_nan(dist, self._num_added())
        ranks, npos = self._positive_ranks(dist, q_pids, q_camids, similarity)
        ap, inp, first = _per_query_metrics(ranks, npos, self.mode)
        self._q_pids.append(q_pids)
        self._q_camids.append(q_camids)
        self._ap.append(ap)
        self._inp.append(inp)
        self._first.append(first)
        self._npos.append(npos)

    def _num_added(self) -> int:
        return sum(len(a) for a in self._q_pids)

    def _positive_ranks(
        self, dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, similarity: bool
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """0-based sorted positions of each query's positives in its filtered list."""
        where = np.searchsorted(self._group_pids, q_pids)
        where = np.minimum(where, len(self._group_pids) - 1)
        found = (self._group_pids[where] == q_pids) & (q_pids != JUNK_PID)
        empty = np.empty(0, dtype=np.intp)
        ranks: list[np.ndarray] = []
        npos = np.zeros(len(q_pids), dtype=np.int64)
        for b in range(len(q_pids)):
            if not found[b]:
                ranks.append(empty)
                continue
            start = self._group_starts[where[b]]
            group = self._group_order[start : start + self._group_sizes[where[b]]]
            same_cam = self.g_camids[group] == q_camids[b]
            positives = group[~same_cam]
            if len(positives) == 0:
                ranks.append(empty)
                continue
            row = -dist[b] if similarity else dist[b]
            removed = group[same_cam]
            self._valid[removed] = False  # same id, same camera: out of this query's list only
            try:
                ranks.append(_ranks_in_row(row, positives, self._valid))
            finally:
                self._valid[removed] = True
            npos[b] = len(positives)
        return ranks, npos

    def result(self) -> dict[str, Any]:
        """Summarize every query added so far (see :func:`evaluate_rank` for the keys)."""
        if not self._ap:
            raise ReidError("no queries were evaluated; evaluation needs at least one query")
        ap = np.concatenate(self._ap)
        inp = np.concatenate(self._inp)
        first = np.concatenate(self._first)
        npos = np.concatenate(self._npos)
        valid = first >= 1
        num_valid = int(valid.sum())
        if num_valid == 0:
            q_pids, q_camids = np.concatenate(self._q_pids), np.concatenate(self._q_camids)
            raise ReidError(self._why_all_invalid(q_pids, q_camids))
        # standard: invalid queries are skipped; market_official (MATLAB): they count as 0.
        denominator = num_valid if self.mode == "standard" else len(first)
        length = max(self.max_rank, 10)
        hits = np.bincount(first[valid & (first <= length)] - 1, minlength=length)
        cmc = np.cumsum(hits[:length]) / denominator
        return {
            "mode": self.mode,
            "max_rank": self.max_rank,
            "cmc": cmc[: self.max_rank],
            "rank1": float(cmc[0]),
            "rank5": float(cmc[4]),
            "rank10": float(cmc[9]),
            "mAP": float(np.nansum(ap) / denominator),
            "mINP": float(np.nansum(inp) / denominator),
            "num_queries": len(first),
            "num_valid": num_valid,
            "num_invalid": len(first) - num_valid,
            "ap": ap,
            "inp": inp,
            "first_hit": first,
            "num_positives": npos,
        }

    def _why_all_invalid(self, q_pids: np.ndarray, q_camids: np.ndarray) -> str:
        """Explain why no query has a positive, in terms the user can act on."""
        real = self.g_pids != JUNK_PID
        shared = np.intersect1d(q_pids[q_pids != JUNK_PID], self.g_pids[real])
        if np.all(q_pids == JUNK_PID):
            return (
                "every query has person id -1 (junk), so none can have a match; "
                "junk images belong in the gallery, not the query set"
            )
        if len(shared) == 0:
            return (
                f"no query person id appears in the gallery (query ids e.g. {_examples(q_pids)}; "
                f"gallery ids e.g. {_examples(self.g_pids[real])}); "
                "query and gallery must come from the same test split"
            )
        unmatched = int(np.count_nonzero(~np.isin(q_pids, shared)))
        others = f"; {unmatched} of the {len(q_pids)} queries have no match at all" if unmatched else ""
        return (
            "every query's matches are in the same camera as the query, which the protocol removes "
            f"(same id + same camera{others}); give query and gallery images of a person different "
            "camera ids (e.g. c1 in the query, c2 in the gallery)"
        )


def _ranks_in_row(row: np.ndarray, positives: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Sorted 0-based positions of ``positives`` among the ``valid`` items of ``row``.

    Position = valid items with a smaller value, or an equal value and a smaller index. Only
    items no farther than the farthest positive can come before a positive, so we keep just
    those (the candidates, in index order) and sort or count among them.
    """
    thresholds = row[positives]
    candidates = np.flatnonzero(row <= thresholds.max())
    candidates = candidates[valid[candidates]]
    values = row[candidates]
    slots = np.searchsorted(candidates, positives)  # where each positive sits among the candidates
    if len(candidates) <= _SORT_MAX_CANDIDATES_PER_POSITIVE * len(positives):
        ordered = np.sort(values)
        ranks = np.searchsorted(ordered, thresholds, side="left")  # items strictly closer
        tied = np.flatnonzero(np.searchsorted(ordered, thresholds, side="right") - ranks > 1)
        for i in tied.tolist():  # equal values: those with a smaller gallery index come first
            ranks[i] += np.count_nonzero(values[: slots[i]] == thresholds[i])
    else:  # many candidates, few positives: one counting pass per positive beats sorting
        ranks = np.empty(len(positives), dtype=np.intp)
        for i, (slot, threshold) in enumerate(zip(slots.tolist(), thresholds.tolist(), strict=True)):
            ranks[i] = np.count_nonzero(values[:slot] <= threshold) + np.count_nonzero(
                values[slot:] < threshold
            )
    ranks.sort()
    return ranks


def _per_query_metrics(
    ranks: list[np.ndarray], npos: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and 1-based first-hit rank of each query from its positives' positions (vectorized)."""
    count = len(ranks)
    ap = np.full(count, np.nan)
    inp = np.full(count, np.nan)
    first = np.full(count, -1, dtype=np.int64)
    valid = np.flatnonzero(npos > 0)
    if len(valid) == 0:
        return ap, inp, first
    sizes = npos[valid]
    flat = np.concatenate([ranks[b] for b in valid]).astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ith = np.arange(len(flat)) - np.repeat(starts, sizes)  # 0-based index of the positive
    if mode == "standard":
        contributions = (ith + 1) / (flat + 1)
    else:  # trapezoid between the precision just before and at the positive (i/r := 1 at r = 0)
        before = np.divide(ith, flat, out=np.ones_like(flat), where=flat > 0)
        contributions = (before + (ith + 1) / (flat + 1)) / 2
    ap[valid] = np.add.reduceat(contributions, starts) / sizes
    last = flat[starts + sizes - 1]
    inp[valid] = sizes / (last + 1)
    first[valid] = flat[starts].astype(np.int64) + 1
    return ap, inp, first


def _as_matrix(distmat: Any) -> np.ndarray:
    if hasattr(distmat, "detach"):  # a torch tensor
        distmat = distmat.detach().cpu().numpy()
    try:
        dist = np.asarray(distmat)
    except (TypeError, ValueError) as exc:
        raise ReidError(f"distmat: cannot read it as a numeric matrix ({exc}); pass a 2-D array") from None
    if dist.ndim != 2:
        raise ReidError(f"distmat: expected a 2-D (queries x gallery) matrix, got shape {dist.shape}")
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ReidError(f"distmat: shape {dist.shape} is empty; evaluation needs queries and gallery items")
    if dist.dtype.kind not in "fiub":
        raise ReidError(f"distmat: expected numbers, got dtype {dist.dtype}; pass float distances")
    return dist


def _check_no_nan(work: np.ndarray, row_offset: int) -> None:
    if np.isnan(work.min()):  # min propagates NaN: one allocation-free pass
        row, col = np.argwhere(np.isnan(work))[0]
        raise ReidError(
            f"distmat[{row + row_offset}, {col}] is NaN; the distances (or the features they come from) "
            "contain NaN: check the model output or the feature files"
        )


def _as_ids(values: Any, name: str, expected: int | None, what: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ReidError(f"{name}: expected a 1-D sequence of integer ids, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        elif len(array):
            raise ReidError(f"{name}: expected integer ids, got dtype {array.dtype}; pass ints")
    if expected is not None and len(array) != expected:
        raise ReidError(
            f"{name} has {len(array)} entries but the distance matrix has {expected} {what}; "
            "pass one id per row/column, in the same order"
        )
    return array.astype(np.int64, copy=False)


def _examples(ids: np.ndarray, count: int = 3) -> str:
    unique = np.unique(ids)
    shown = ", ".join(str(v) for v in unique[:count])
    return shown + (", ..." if len(unique) > count else "")
