"""Dataset readers: Market-1501, DukeMTMC-reID, MSMT17, CUHK03-NP and a generic folder dataset.

Every reader returns a :class:`ReidDataset` of :class:`Sample` lists. Conventions shared by all:

* camera ids are kept exactly as in the file name (``c1`` -> 1; MSMT17's ``_01_`` -> 1) so what
  users see matches their files;
* junk (pid -1) is dropped everywhere; distractors (pid 0) stay in the gallery;
* training pids are relabelled 0..N-1 in sorted order of the original ids
  (``ReidDataset.train_pid_map`` keeps original -> label); query/gallery keep the original ids.

Readers find their folders under ``root`` the way users lay them out: the dataset folder itself,
or a parent holding it under its usual (possibly versioned) name, e.g. ``Market-1501-v15.09.15/``.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from reid_stra.data.images import is_image_file, read_image
from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.utils.registry import Registry

SPLITS = ("train", "query", "gallery")
MARKET_PATTERN = r"^(?P<pid>-?\d+)_c(?P<camid>\d+)"
MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
_MARKET_RE = re.compile(MARKET_PATTERN)
_MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
_SHOW = 3  # how many offending paths an error message lists before "(+N more)"


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
    match = _MARKET_RE.match(name)
    if match is None:
        shown = str(filename) if str(filename).isprintable() else repr(str(filename))  # keep it one line
        raise ReidError(f"{shown}: file name does not look like {MARKET_EXAMPLE} (pid_cCAMERA...)")
    return int(match["pid"]), int(match["camid"])


# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    layout: str
    options: dict[str, str]
    reader: Callable[..., ReidDataset]


_READERS: Registry[DatasetInfo] = Registry("dataset")


def _register(name: str, title: str, layout: str, options: dict[str, str] | None = None):
    def wrap(fn: Callable[..., ReidDataset]) -> Callable[..., ReidDataset]:
        _READERS.add(name, DatasetInfo(name, title, layout, options or {}, fn))
        return fn

    return wrap


def list_datasets() -> list[str]:
    return _READERS.names()


_ALIASES = {"market": "market1501", "duke": "dukemtmcreid", "cuhk03np": "cuhk03", "msmt": "msmt17"}


def dataset_info(name: str) -> DatasetInfo:
    """Reader metadata; names are case-, dash- and underscore-insensitive (``Market-1501`` works)."""
    key = name.strip().lower().replace("-", "").replace("_", "")
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
    **options: Any,
) -> ReidDataset:
    """Read dataset ``name`` under ``root``.

    ``splits`` limits which of train/query/gallery are read (the others stay empty), e.g.
    evaluation needs only query and gallery. ``verify_images`` decodes every image first; bad
    ones raise a :class:`ReidError` listing them, or are dropped (and reported in ``.skipped``
    and ``.warnings``) with ``skip_bad=True``. Reader-specific ``options`` are listed by
    :func:`dataset_info` (e.g. ``variant="detected"`` for cuhk03).
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
    if verify_images:
        _verify_dataset(dataset, skip_bad, wanted)
    _finish(dataset)
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


# ---------------------------------------------------------------------------------------------
# Shared machinery


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
    others = sorted((p for p in _subdirs(root) if complete(p)), key=lambda p: p.name)
    if len(others) == 1:
        return others[0]
    expected = ", ".join(f"{r}/" for r in required)
    if len(others) > 1:
        names = ", ".join(p.name + "/" for p in others)
        raise ReidError(
            f"--root {root}: several folders look like {dataset} ({names}); point --root at the one to use"
        )
    # Nothing complete: report the closest place (the one with most of the required folders).
    places = [root] + [p for p in _subdirs(root)]
    best = max(places, key=lambda p: sum((p / r).is_dir() for r in required))
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in _entries(best))
    missing = ", ".join(f"{r}/" for r in required if not (best / r).is_dir())
    hint = f" (or under {root}/{candidates[0]}/)" if candidates else ""
    shown = ", ".join(found[:8]) + (f" (+{len(found) - 8} more)" if len(found) > 8 else "")
    raise ReidError(
        f"--root {best}: not a {dataset} folder; expected {expected}{hint}; "
        f"missing {missing}; found: {shown or 'nothing'}"
    )


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def _entries(path: Path) -> list[Path]:
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
    pattern: re.Pattern[str] = _MARKET_RE,
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
            f"{pattern.pattern!r} (e.g. {example}): {_listing(unparsed)}"
        )
    return samples


def relabel_train(samples: Sequence[Sample]) -> tuple[list[Sample], dict[int, int]]:
    """Training pids -> 0..N-1 in sorted order of the original ids (deterministic)."""
    mapping = {pid: label for label, pid in enumerate(sorted({s.pid for s in samples}))}
    return [Sample(s.path, mapping[s.pid], s.camid) for s in samples], mapping


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOW])
    return shown + (f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def _require_nonempty(samples: list[Sample], folder: Path, split: str, what: str) -> list[Sample]:
    if not samples:
        raise ReidError(f"{folder}: the {split} split is empty; expected {what}")
    return samples


def _read_market_like(
    name: str, base: Path, folders: dict[str, str], wanted: Sequence[str], pattern=_MARKET_RE, recursive=False
) -> ReidDataset:
    raw = {}
    for split in SPLITS:
        if split not in wanted:
            raw[split] = []
            continue
        folder = base / folders[split]
        what = f"image files named like {MARKET_EXAMPLE}"
        raw[split] = _require_nonempty(
            read_named_folder(folder, pattern, recursive=recursive), folder, split, what
        )
    train, mapping = relabel_train(raw["train"])
    return ReidDataset(name, base, train, raw["query"], raw["gallery"], train_pid_map=mapping)


def _finish(dataset: ReidDataset) -> None:
    """Warnings the CLI shows: query ids absent from the gallery, same-camera-only matches."""
    if not dataset.query or not dataset.gallery:
        return
    gallery_cams: dict[int, set[int]] = {}
    for s in dataset.gallery:
        gallery_cams.setdefault(s.pid, set()).add(s.camid)
    absent = sum(1 for s in dataset.query if s.pid not in gallery_cams)
    same_cam_only = sum(
        1 for s in dataset.query if s.pid in gallery_cams and gallery_cams[s.pid] <= {s.camid}
    )
    cameras = {s.camid for s in dataset.query} | {s.camid for s in dataset.gallery}
    total = len(dataset.query)
    if len(cameras) == 1:
        dataset.warnings.append(
            f"query and gallery all come from camera {next(iter(cameras))}: standard evaluation ignores "
            "same-id same-camera matches, so no query can be scored; use data with several cameras"
        )
    elif same_cam_only:
        dataset.warnings.append(
            f"{same_cam_only} of {total} queries have their matches only in the same camera, which "
            "standard evaluation ignores; those queries will not be scored"
        )
    if absent:
        dataset.warnings.append(
            f"{absent} of {total} queries have an id that is absent from the gallery; they will not be scored"
        )


def verify_images(paths: Iterable[str | os.PathLike | Sample]) -> list[tuple[str, str]]:
    """Decode every image (through :func:`read_image`); return ``(path, reason)`` for bad ones."""
    from reid_stra.utils.progress import task_progress

    items = [p.path if isinstance(p, Sample) else str(p) for p in paths]
    bad: list[tuple[str, str]] = []
    with task_progress("verifying images", total=len(items), unit="img") as advance:
        for path in items:
            try:
                read_image(path)
            except ReidError as exc:
                reason = str(exc)
                bad.append((path, reason[len(path) + 2 :] if reason.startswith(path + ": ") else reason))
            advance()
    return bad


def _verify_dataset(dataset: ReidDataset, skip_bad: bool, wanted: Sequence[str]) -> None:
    everything = [s for samples in dataset.splits().values() for s in samples]
    bad = verify_images(everything)
    if not bad:
        return
    if not skip_bad:
        first_path, first_reason = bad[0]
        more = f" (+{len(bad) - 1} more: {_listing([p for p, _ in bad[1:]])})" if len(bad) > 1 else ""
        raise ReidError(
            f"{len(bad)} unreadable image(s) in {dataset.root}: {first_path}: {first_reason}{more}; "
            "fix or remove them, or allow skipping them (--skip-bad)"
        )
    bad_paths = {p for p, _ in bad}
    dataset.train = [s for s in dataset.train if s.path not in bad_paths]
    dataset.query = [s for s in dataset.query if s.path not in bad_paths]
    dataset.gallery = [s for s in dataset.gallery if s.path not in bad_paths]
    dataset.val = [s for s in dataset.val if s.path not in bad_paths]
    if dataset.train_pid_map:  # an id may have lost all its images: keep labels dense
        inverse = {label: pid for pid, label in dataset.train_pid_map.items()}
        original = [Sample(s.path, inverse[s.pid], s.camid) for s in dataset.train]
        dataset.train, dataset.train_pid_map = relabel_train(original)
    dataset.skipped = bad
    dataset.warnings.append(f"skipped {len(bad)} unreadable image(s): {_listing([p for p, _ in bad])}")
    for split in wanted:
        if not dataset.splits()[split]:
            raise ReidError(f"{dataset.root}: every {split} image is unreadable; nothing left to use")


# ---------------------------------------------------------------------------------------------
# Readers


@_register(
    "market1501",
    "Market-1501",
    "bounding_box_train/, query/, bounding_box_test/ (under ROOT, ROOT/Market-1501-v15.09.15/ or "
    "ROOT/Market-1501/); names 0002_c1s1_000451_03.jpg",
)
def _market1501(root: Path, wanted: Sequence[str]) -> ReidDataset:
    required = [_MARKET_FOLDERS[s] for s in wanted]
    base = find_dataset_dir(
        root, required, ["Market-1501-v15.09.15", "Market-1501", "market1501"], "Market-1501"
    )
    return _read_market_like("market1501", base, _MARKET_FOLDERS, wanted)


@_register(
    "dukemtmcreid",
    "DukeMTMC-reID",
    "bounding_box_train/, query/, bounding_box_test/ (under ROOT or ROOT/DukeMTMC-reID/); "
    "names 0001_c2_f0046182.jpg",
)
def _dukemtmcreid(root: Path, wanted: Sequence[str]) -> ReidDataset:
    required = [_MARKET_FOLDERS[s] for s in wanted]
    base = find_dataset_dir(root, required, ["DukeMTMC-reID", "dukemtmc-reid", "DukeMTMC"], "DukeMTMC-reID")
    return _read_market_like("dukemtmcreid", base, _MARKET_FOLDERS, wanted)


_CUHK03_VARIANTS = ("labeled", "detected")


@_register(
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
    required = [f"{variant}/{_MARKET_FOLDERS[s]}" for s in wanted]
    candidates = ["cuhk03-np", "CUHK03-NP", "cuhk03_np", "cuhk03", "CUHK03"]
    try:
        base = find_dataset_dir(root, required, candidates, f"CUHK03-NP ({variant})") / variant
    except ReidError:
        # The user may point straight at the variant folder (ROOT = .../cuhk03-np/labeled).
        direct = [_MARKET_FOLDERS[s] for s in wanted]
        if root.name.lower() == variant and all((root / r).is_dir() for r in direct):
            base = root
        else:
            raise
    return _read_market_like(f"cuhk03-{variant}", base, _MARKET_FOLDERS, wanted)


_MSMT_LISTS = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
_MSMT_DIRS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}


@_register(
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
            _require_nonempty(raw[split], lists[split], split, "lines 'folder/image.jpg PID'")
    train_raw, val = raw["train"], raw["val"]
    if combine_val:
        train_raw, val = train_raw + val, []
    train, mapping = relabel_train(train_raw)
    if val and all(s.pid in mapping for s in val):  # val ids are train ids: give them train labels
        val = [Sample(s.path, mapping[s.pid], s.camid) for s in val]
    return ReidDataset("msmt17", base, train, raw["query"], raw["gallery"], train_pid_map=mapping, val=val)


def _find_msmt(root: Path, names: Sequence[str]) -> tuple[Path, Path, Path]:
    """(version folder, train images, test images); also finds torchreid's ROOT/msmt17/MSMT17_V1."""
    bases = [root] + sorted(p for p in _subdirs(root) if p.name.upper().startswith("MSMT17"))
    places = [place for base in bases for place in [base] + [base / n for n in names]]
    for place in places:
        for name in names:
            train_name, test_name = _MSMT_DIRS[name]
            if (place / train_name).is_dir() and (place / test_name).is_dir():
                return place, place / train_name, place / test_name
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in _entries(root))
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
            f"{list_path}: lists images that do not exist under {image_dir}: {_listing(missing)}; "
            "check that the list files belong to this copy of MSMT17"
        )
    return samples


@_register(
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
    return _read_market_like("folder", base, folders, wanted, pattern=regex, recursive=recursive)


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
        raise ReidError(f"{csv_path}: {len(missing)} listed image(s) not found: {_listing(missing)}")
    for split in wanted:
        _require_nonempty(raw[split], csv_path, split, f"rows for {split} in the CSV")
    train, mapping = relabel_train(raw["train"])
    return ReidDataset("folder", root, train, raw["query"], raw["gallery"], train_pid_map=mapping)
