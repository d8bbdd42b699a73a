"""Reader of MSMT17 (V1 and V2): list files name the images; the camera is the name's third field."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from reid_stra.data.datasets.discovery import entries, listing, require_nonempty, subdirs
from reid_stra.data.datasets.registry import register_dataset
from reid_stra.data.datasets.samples import ReidDataset, Sample, relabel_train
from reid_stra.errors import ReidError

_MSMT_LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
_MSMT_DIRS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}


@register_dataset(
    "msmt17",
    "MSMT17 (V1 or V2)",
    "MSMT17_V1/ (train/, test/) or MSMT17_V2/ (mask_train_v2/, mask_test_v2/) with list_train.txt, "
    "list_val.txt, list_query.txt, list_gallery.txt (under ROOT or ROOT itself)",
    {
        "combine_val": "false (default, like torchreid and published results): list_val.txt is the val "
        "split; true: it joins training (the full 32,621-image train set)",
        "version": "auto (default), V1 or V2",
    },
)
def _msmt17(
    root: Path, wanted: Sequence[str], combine_val: bool = False, version: str = "auto"
) -> ReidDataset:
    version = str(version).upper()
    if version not in ("AUTO", "V1", "V2"):
        raise ReidError(f"msmt17 version '{version}': expected auto, V1 or V2")
    names = list(_MSMT_DIRS) if version == "AUTO" else [f"MSMT17_{version}"]
    base, train_dir, test_dir = _find_msmt(root, names)
    lists = {split: base / _MSMT_LISTS[split] for split in _MSMT_LISTS}
    raw: dict[str, list[Sample]] = {}
    for split in ("train", "val", "query", "gallery"):
        needed = split in wanted or (split == "val" and "train" in wanted)
        if not needed:
            raw[split] = []
            continue
        if split == "val" and not lists["val"].exists():
            raw[split] = []  # some copies ship without the val list
            continue
        image_dir = train_dir if split in ("train", "val") else test_dir
        raw[split] = _read_msmt_list(lists[split], image_dir)
        if split != "val":
            require_nonempty(raw[split], lists[split], split, "lines 'folder/image.jpg PID'")
    train_raw, val = raw["train"], raw["val"]
    if combine_val:
        train_raw, val = train_raw + val, []
    train, mapping = relabel_train(train_raw)
    if val and all(s.pid in mapping for s in val):  # val ids are train ids: give them train labels
        val = [Sample(s.path, mapping[s.pid], s.camid) for s in val]
    return ReidDataset("msmt17", base, train, raw["query"], raw["gallery"], train_pid_map=mapping, val=val)


def _find_msmt(root: Path, names: Sequence[str]) -> tuple[Path, Path, Path]:
    """(version folder, train images, test images); also finds torchreid's ROOT/msmt17/MSMT17_V1."""
    bases = [root] + sorted(p for p in subdirs(root) if p.name.upper().startswith("MSMT17"))
    places = [place for base in bases for place in [base] + [base / n for n in names]]
    for place in places:
        for name in names:
            train_name, test_name = _MSMT_DIRS[name]
            if (place / train_name).is_dir() and (place / test_name).is_dir():
                return place, place / train_name, place / test_name
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in entries(root))
    raise ReidError(
        f"--root {root}: not an MSMT17 folder; expected {' or '.join(n + '/' for n in names)} holding "
        "train/ and test/ (V2: mask_train_v2/ and mask_test_v2/) and list_train.txt, list_query.txt, "
        f"list_gallery.txt; found: {', '.join(found[:8]) or 'nothing'}"
    )


def _read_msmt_list(list_path: Path, image_dir: Path) -> list[Sample]:
    """Lines ``0000/0000_000_01_0303morning_0015_0.jpg 0``: path, pid; camera = 3rd name field."""
    if not list_path.is_file():
        raise ReidError(f"{list_path}: list file not found; MSMT17 needs {', '.join(_MSMT_LISTS.values())}")
    samples = []
    with open(list_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                relative, pid = parts[0], int(parts[1])
                camid = int(Path(relative).name.split("_")[2])
            except (IndexError, ValueError):
                raise ReidError(
                    f"{list_path}:{number}: cannot read {line.strip()!r}; expected "
                    "'0000/0000_000_01_0303morning_0015_0.jpg 0' (path, pid; camera is the 3rd field)"
                ) from None
            if pid == -1:
                continue
            samples.append(Sample(str(image_dir / relative), pid, camid))
    missing = [s.path for s in samples[:50] if not os.path.exists(s.path)]
    if missing:
        raise ReidError(
            f"{list_path}: lists images that do not exist under {image_dir}: {listing(missing)}; "
            "check that the list files belong to this copy of MSMT17"
        )
    return samples
