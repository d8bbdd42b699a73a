"""Readers of the Market-1501 layout: Market-1501, DukeMTMC-reID and CUHK03-NP (new protocol)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reid_stra.data.datasets.discovery import find_dataset_dir, read_market_like
from reid_stra.data.datasets.registry import register_dataset
from reid_stra.data.datasets.samples import ReidDataset
from reid_stra.errors import ReidError

MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@register_dataset(
    "market1501",
    "Market-1501",
    "bounding_box_train/, query/, bounding_box_test/ (under ROOT, ROOT/Market-1501-v15.09.15/ or "
    "ROOT/Market-1501/); names 0002_c1s1_000451_03.jpg",
)
def _market1501(root: Path, wanted: Sequence[str]) -> ReidDataset:
    required = [MARKET_FOLDERS[s] for s in wanted]
    base = find_dataset_dir(
        root, required, ["Market-1501-v15.09.15", "Market-1501", "market1501"], "Market-1501"
    )
    return read_market_like(
        "market1501", base, MARKET_FOLDERS, wanted, names_like=(r"-?\d+_c\d+s\d+_", "0002_c1s1_000451_03.jpg")
    )


@register_dataset(
    "dukemtmcreid",
    "DukeMTMC-reID",
    "bounding_box_train/, query/, bounding_box_test/ (under ROOT or ROOT/DukeMTMC-reID/); "
    "names 0001_c2_f0046182.jpg",
)
def _dukemtmcreid(root: Path, wanted: Sequence[str]) -> ReidDataset:
    required = [MARKET_FOLDERS[s] for s in wanted]
    base = find_dataset_dir(root, required, ["DukeMTMC-reID", "dukemtmc-reid", "DukeMTMC"], "DukeMTMC-reID")
    return read_market_like(
        "dukemtmcreid", base, MARKET_FOLDERS, wanted, names_like=(r"-?\d+_c\d+_f\d+", "0001_c2_f0046182.jpg")
    )


_CUHK03_VARIANTS = ("labeled", "detected")


@register_dataset(
    "cuhk03",
    "CUHK03-NP (new protocol)",
    "labeled/ or detected/ each with bounding_box_train/, query/, bounding_box_test/ (under ROOT, "
    "ROOT/cuhk03-np/ or ROOT/cuhk03/); names 0001_c1_1.png",
    {"variant": "labeled (default) or detected: which bounding boxes to use"},
)
def _cuhk03(root: Path, wanted: Sequence[str], variant: str = "labeled") -> ReidDataset:
    variant = str(variant).lower()
    if variant not in _CUHK03_VARIANTS:
        raise ReidError(f"cuhk03 variant '{variant}': expected labeled or detected")
    required = [f"{variant}/{MARKET_FOLDERS[s]}" for s in wanted]
    candidates = ["cuhk03-np", "CUHK03-NP", "cuhk03_np", "cuhk03", "CUHK03"]
    try:
        base = find_dataset_dir(root, required, candidates, f"CUHK03-NP ({variant})") / variant
    except ReidError:
        # The user may point straight at the variant folder (ROOT = .../cuhk03-np/labeled).
        direct = [MARKET_FOLDERS[s] for s in wanted]
        if root.name.lower() == variant and all((root / r).is_dir() for r in direct):
            base = root
        else:
            raise
    return read_market_like(f"cuhk03-{variant}", base, MARKET_FOLDERS, wanted)
