"""Reader of any folder dataset: pid and camera from a file-name regex, or from a CSV."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

from reid_stra.data.datasets.discovery import find_dataset_dir, listing, read_market_like, require_nonempty
from reid_stra.data.datasets.registry import register_dataset
from reid_stra.data.datasets.samples import MARKET_PATTERN, SPLITS, ReidDataset, Sample, relabel_train
from reid_stra.errors import ReidError


@register_dataset(
    "folder",
    "Generic folder dataset",
    "train/, query/, gallery/ under ROOT (names configurable); pid and camera from a file-name regex "
    "(default Market-style 0002_c1_...jpg) or from a CSV with columns path,pid,camid[,split]",
    {
        "train_dir": "training folder name (default train)",
        "query_dir": "query folder name (default query)",
        "gallery_dir": "gallery folder name (default gallery)",
        "pattern": f"regex with named groups pid and camid (default {MARKET_PATTERN}); matched on the file "
        "name, or on the path below the split folder when it contains '/'",
        "csv": "CSV file (relative to ROOT or absolute) with header path,pid,camid[,split]; paths relative "
        "to ROOT; without a split column the split is the folder the path starts with",
        "recursive": "true: also read images in sub-folders (default false)",
    },
)
def _folder(
    root: Path,
    wanted: Sequence[str],
    train_dir: str = "train",
    query_dir: str = "query",
    gallery_dir: str = "gallery",
    pattern: str = MARKET_PATTERN,
    csv: str | None = None,
    recursive: bool = False,
) -> ReidDataset:
    folders = {"train": train_dir, "query": query_dir, "gallery": gallery_dir}
    if csv is not None:
        return _folder_from_csv(root, Path(csv), folders, wanted)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ReidError(f"pattern {pattern!r}: not a valid regular expression ({exc})") from None
    if not {"pid", "camid"} <= set(regex.groupindex):
        raise ReidError(f"pattern {pattern!r}: needs named groups (?P<pid>...) and (?P<camid>...)")
    base = find_dataset_dir(root, [folders[s] for s in wanted], [], "folder-dataset")
    return read_market_like("folder", base, folders, wanted, pattern=regex, recursive=recursive)


def _folder_from_csv(
    root: Path, csv_path: Path, folders: dict[str, str], wanted: Sequence[str]
) -> ReidDataset:
    if not csv_path.is_absolute():
        csv_path = root / csv_path
    if not csv_path.is_file():
        raise ReidError(f"csv {csv_path}: file not found")
    by_folder = {name: split for split, name in folders.items()}
    raw: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if not {"path", "pid", "camid"} <= columns:
            raise ReidError(
                f"{csv_path}: header is {','.join(reader.fieldnames or []) or 'empty'}; "
                "expected columns path,pid,camid (and optionally split)"
            )
        for number, row in enumerate(reader, 2):
            try:
                pid, camid = int(row["pid"]), int(row["camid"])
            except (TypeError, ValueError):
                raise ReidError(f"{csv_path}:{number}: pid and camid must be integers, got {row}") from None
            relative = (row["path"] or "").strip()
            split = (row.get("split") or "").strip().lower() or by_folder.get(
                Path(relative).parts[0] if relative else ""
            )
            if split not in SPLITS:
                raise ReidError(
                    f"{csv_path}:{number}: cannot tell the split of {relative!r}; add a split column "
                    f"(train/query/gallery) or put it under {', '.join(folders.values())}/"
                )
            if pid == -1 or split not in wanted:
                continue
            path = Path(relative) if Path(relative).is_absolute() else root / relative
            raw[split].append(Sample(str(path), pid, camid))
    missing = [s.path for samples in raw.values() for s in samples if not os.path.exists(s.path)]
    if missing:
        raise ReidError(f"{csv_path}: {len(missing)} listed image(s) not found: {listing(missing)}")
    for split in wanted:
        require_nonempty(raw[split], csv_path, split, f"rows for {split} in the CSV")
    train, mapping = relabel_train(raw["train"])
    return ReidDataset("folder", root, train, raw["query"], raw["gallery"], train_pid_map=mapping)
