"""Finding a dataset's folders under the ``--root`` users give, and reading file-name-labelled folders.

Readers find their folders the way users lay them out: the dataset folder itself, or a parent
holding it under its usual (possibly versioned) name, e.g. ``Market-1501-v15.09.15/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from reid_stra.data.datasets.samples import (
    MARKET_EXAMPLE,
    MARKET_RE,
    SPLITS,
    ReidDataset,
    Sample,
    relabel_train,
)
from reid_stra.data.images import is_image_file
from reid_stra.errors import ReidError

_SHOW = 3  # how many offending paths an error message lists before "(+N more)"


def find_dataset_dir(root: Path, required: Sequence[str], candidates: Sequence[str], dataset: str) -> Path:
    """The folder that holds all ``required`` sub-folders: ``root`` itself, ``root/<candidate>``,
    or the single sub-folder of ``root`` that has them (any versioned name).

    The error says what was expected and what was found, so a wrong ``--root`` is fixable.
    """

    def complete(place: Path) -> bool:
        return all((place / r).is_dir() for r in required)

    for place in [root] + [root / c for c in candidates]:
        if complete(place):
            return place
    others = sorted((p for p in subdirs(root) if complete(p)), key=lambda p: p.name)
    if len(others) == 1:
        return others[0]
    expected = ", ".join(f"{r}/" for r in required)
    if len(others) > 1:
        names = ", ".join(p.name + "/" for p in others)
        raise ReidError(
            f"--root {root}: several folders look like {dataset} ({names}); point --root at the one to use"
        )
    # Nothing complete: report the closest place (the one with most of the required folders).
    places = [root] + [p for p in subdirs(root)]
    best = max(places, key=lambda p: sum((p / r).is_dir() for r in required))
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in entries(best))
    missing = ", ".join(f"{r}/" for r in required if not (best / r).is_dir())
    hint = f" (or under {root}/{candidates[0]}/)" if candidates else ""
    shown = ", ".join(found[:8]) + (f" (+{len(found) - 8} more)" if len(found) > 8 else "")
    raise ReidError(
        f"--root {best}: not a {dataset} folder; expected {expected}{hint}; "
        f"missing {missing}; found: {shown or 'nothing'}"
    )


def subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def entries(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if not e.name.startswith(".")]
    except OSError:
        return []


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` in sorted order (deterministic across file systems)."""
    if not folder.is_dir():
        raise ReidError(f"{folder}: folder not found")
    try:
        if recursive:
            found = [p for p in folder.rglob("*") if is_image_file(p.name) and p.is_file()]
        else:
            found = [Path(e.path) for e in os.scandir(folder) if is_image_file(e.name) and e.is_file()]
    except PermissionError:
        raise ReidError(f"{folder}: permission denied; check the folder's read permissions") from None
    return sorted(found)


def read_named_folder(
    folder: Path,
    pattern: re.Pattern[str] = MARKET_RE,
    example: str = MARKET_EXAMPLE,
    recursive: bool = False,
) -> list[Sample]:
    """Samples of a folder whose file names carry pid and camera (``pattern`` groups pid, camid).

    A pattern containing ``/`` is matched against the path relative to ``folder`` (for
    folder-per-identity layouts); otherwise against the file name. Junk (pid -1) is dropped.
    """
    by_path = "/" in pattern.pattern
    samples, unparsed = [], []
    for path in list_images(folder, recursive=recursive):
        text = path.relative_to(folder).as_posix() if by_path else path.name
        match = pattern.search(text)
        if match is None:
            unparsed.append(text)
            continue
        try:
            pid, camid = int(match["pid"]), int(match["camid"])
        except (IndexError, ValueError):
            unparsed.append(text)
            continue
        if pid == -1:
            continue
        samples.append(Sample(str(path), pid, camid))
    if unparsed:
        raise ReidError(
            f"{folder}: {len(unparsed)} file name(s) do not match the expected pattern "
            f"{pattern.pattern!r} (e.g. {example}): {listing(unparsed)}"
        )
    return samples


def listing(items: Sequence[str]) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOW])
    return shown + (f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def require_nonempty(samples: list[Sample], folder: Path, split: str, what: str) -> list[Sample]:
    if not samples:
        raise ReidError(f"{folder}: the {split} split is empty; expected {what}")
    return samples


def read_market_like(
    name: str,
    base: Path,
    folders: dict[str, str],
    wanted: Sequence[str],
    pattern=MARKET_RE,
    recursive=False,
    names_like: tuple[str, str] | None = None,
) -> ReidDataset:
    """Read the Market-style folders of ``base``. ``names_like`` = (regex, example) of this
    dataset's own file names: the readers share one parser, so a folder of another dataset's
    images would be read without a word; the dataset then warns."""
    raw = {}
    for split in SPLITS:
        if split not in wanted:
            raw[split] = []
            continue
        folder = base / folders[split]
        what = f"image files named like {MARKET_EXAMPLE}"
        raw[split] = require_nonempty(
            read_named_folder(folder, pattern, recursive=recursive), folder, split, what
        )
    train, mapping = relabel_train(raw["train"])
    dataset = ReidDataset(name, base, train, raw["query"], raw["gallery"], train_pid_map=mapping)
    if names_like is not None:
        dataset.warnings.extend(_foreign_name_warnings(name, raw, names_like))
    return dataset


def _foreign_name_warnings(name: str, raw: dict[str, list[Sample]], names_like: tuple[str, str]) -> list[str]:
    regex, example = re.compile(names_like[0]), names_like[1]
    warnings = []
    for split, samples in raw.items():
        foreign = [s for s in samples if not regex.match(os.path.basename(s.path))]
        if samples and len(foreign) * 2 > len(samples):  # most names: a few odd files are not news
            warnings.append(
                f"{len(foreign)} of {len(samples)} {split} file names do not look like {name}'s "
                f"({example}), e.g. {os.path.basename(foreign[0].path)}: is this the right dataset name?"
            )
    return warnings
