"""The dataset registry: each reader registers its name, layout and options; ``load_dataset`` reads one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reid_stra.data.datasets.checks import add_query_gallery_warnings, verify_dataset
from reid_stra.data.datasets.samples import SPLITS, ReidDataset
from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.utils.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    layout: str
    options: dict[str, str]
    reader: Callable[..., ReidDataset]


_READERS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(name: str, title: str, layout: str, options: dict[str, str] | None = None):
    def wrap(fn: Callable[..., ReidDataset]) -> Callable[..., ReidDataset]:
        _READERS.add(name, DatasetInfo(name, title, layout, options or {}, fn))
        return fn

    return wrap


def list_datasets() -> list[str]:
    return _READERS.names()


_ALIASES = {"market": "market1501", "duke": "dukemtmcreid", "cuhk03np": "cuhk03", "msmt": "msmt17"}


def _normalized(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def dataset_info(name: str) -> DatasetInfo:
    """Reader metadata; names are case-, dash- and underscore-insensitive (``Market-1501`` works)."""
    key = _normalized(name)
    key = _ALIASES.get(key, key)
    if key not in _READERS:
        raise unknown_name_error("dataset", name, _READERS.names())
    return _READERS.get(key)


def load_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    verify_images: bool = False,
    skip_bad: bool = False,
    splits: Sequence[str] = SPLITS,
    progress: bool = True,
    **options: Any,
) -> ReidDataset:
    """Read dataset ``name`` under ``root``.

    ``splits`` limits which of train/query/gallery are read (the others stay empty), e.g.
    evaluation needs only query and gallery. ``verify_images`` decodes every image first; bad
    ones raise a :class:`ReidError` listing them, or are dropped (and reported in ``.skipped``
    and ``.warnings``) with ``skip_bad=True`` (``progress``: a bar while decoding). Reader-specific
    ``options`` are listed by :func:`dataset_info` (e.g. ``variant="detected"`` for cuhk03).
    """
    info = dataset_info(name)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        valid = ", ".join(sorted(info.options)) or "none"
        raise ReidError(f"dataset {info.name}: unknown option '{unknown[0]}'; valid options: {valid}")
    wanted = tuple(splits)
    bad_split = [s for s in wanted if s not in SPLITS]
    if bad_split or not wanted:
        raise ReidError(f"splits {list(wanted)}: expected a non-empty subset of {', '.join(SPLITS)}")
    root = Path(root).expanduser()
    if not root.exists():
        raise ReidError(f"--root {root}: folder not found; point --root at the folder holding the dataset")
    if not root.is_dir():
        raise ReidError(f"--root {root}: is a file, not a folder; point --root at the dataset folder")
    dataset = info.reader(root, wanted, **options)
    if _normalized(name) != info.name:  # an alias, not a spelling: say which dataset it means
        dataset.warnings.insert(0, f"dataset '{name}' read as {info.name} ({info.title})")
    if verify_images:
        verify_dataset(dataset, skip_bad, wanted, progress)
    add_query_gallery_warnings(dataset)
    return dataset


def parse_dataset_options(name: str, pairs: Iterable[str]) -> dict[str, Any]:
    """Turn CLI ``--data-opt key=value`` strings into reader options (booleans understood)."""
    info = dataset_info(name)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ReidError(f"--data-opt {pair!r}: expected key=value (e.g. variant=detected)")
        if key not in info.options:
            valid = ", ".join(sorted(info.options)) or "none"
            raise ReidError(f"--data-opt {key}: not an option of dataset {info.name}; valid: {valid}")
        lowered = value.strip().lower()
        options[key] = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            lowered, value.strip()
        )
    return options
