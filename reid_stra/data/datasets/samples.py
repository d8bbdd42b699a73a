"""The sample model every reader returns: :class:`Sample` lists in a :class:`ReidDataset`.

Conventions shared by all readers: camera ids are kept exactly as in the file name (``c1`` -> 1;
MSMT17's ``_01_`` -> 1) so what users see matches their files; junk (pid -1) is dropped
everywhere; distractors (pid 0) stay in the gallery; training pids are relabelled 0..N-1 in sorted
order of the original ids (``ReidDataset.train_pid_map`` keeps original -> label); query/gallery
keep the original ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from reid_stra.errors import ReidError

SPLITS = ("train", "query", "gallery")
MARKET_PATTERN = r"^(?P<pid>-?\d+)_c(?P<camid>\d+)"
MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
MARKET_RE = re.compile(MARKET_PATTERN)


class Sample(NamedTuple):
    """One image: its path, person id and camera id (as in the file name)."""

    path: str
    pid: int
    camid: int


@dataclass
class ReidDataset:
    """The train/query/gallery splits of one dataset, plus what the user should know about it."""

    name: str
    root: Path
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    train_pid_map: dict[int, int] = field(default_factory=dict)
    val: list[Sample] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_train_pids(self) -> int:
        return len(self.train_pid_map) if self.train_pid_map else len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def splits(self) -> dict[str, list[Sample]]:
        named = {"train": self.train, "query": self.query, "gallery": self.gallery}
        if self.val:
            named["val"] = self.val
        return named

    def summary(self) -> list[dict[str, Any]]:
        """One row per split: images, ids, cameras (what ``reid-stra datasets`` prints)."""
        return [summarize_split(split, samples) for split, samples in self.splits().items()]


def summarize_split(split: str, samples: Sequence[Sample]) -> dict[str, Any]:
    """Counts of one split; in query/gallery pid 0 is a distractor, not an identity."""
    pids = {s.pid for s in samples}
    test_split = split in ("query", "gallery")
    distractors = sum(1 for s in samples if s.pid == 0) if test_split else 0
    return {
        "split": split,
        "ids": len(pids - {0}) if test_split else len(pids),
        "images": len(samples),
        "cameras": len({s.camid for s in samples}),
        "distractors": distractors,
    }


def parse_market_name(filename: str | os.PathLike) -> tuple[int, int]:
    """``0002_c1s1_000451_03.jpg`` -> (2, 1); also Duke/CUHK03-NP names (``0001_c2_f0046182.jpg``)."""
    name = Path(filename).name
    match = MARKET_RE.match(name)
    if match is None:
        shown = str(filename) if str(filename).isprintable() else repr(str(filename))  # keep it one line
        raise ReidError(f"{shown}: file name does not look like {MARKET_EXAMPLE} (pid_cCAMERA...)")
    return int(match["pid"]), int(match["camid"])


def relabel_train(samples: Sequence[Sample]) -> tuple[list[Sample], dict[int, int]]:
    """Training pids -> 0..N-1 in sorted order of the original ids (deterministic)."""
    mapping = {pid: label for label, pid in enumerate(sorted({s.pid for s in samples}))}
    return [Sample(s.path, mapping[s.pid], s.camid) for s in samples], mapping
