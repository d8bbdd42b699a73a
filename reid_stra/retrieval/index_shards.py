"""An on-disk IVF index built in shards by separate processes, then merged (FAISS's ondisk demo).

1. ``save_trained``: train once (``feats.trained.faiss``, no vectors).
2. ``build_shard``: shard I of N adds its contiguous rows, under their row numbers in the whole
   gallery, to a copy of the trained index (``feats.shard-I-of-N.faiss``); any process, any time.
3. ``merge_shards``: the shards' inverted lists go into one data file and the index beside the
   features becomes an on-disk one (:func:`reid_stra.retrieval.index_store.save_index`).

Each file has a ``.json`` description; a shard's records the checksum of the trained index it
was added to, so shards of an older training (other quantizer, other codebooks) are refused.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reid_stra.errors import ReidError
from reid_stra.retrieval.features import FeatureMeta, features_path
from reid_stra.retrieval.index import SearchIndex, add_vectors, build_index
from reid_stra.retrieval.index_store import (
    describe_index,
    file_is_complete,
    index_path,
    read_description,
    save_index,
    write_index_file,
)
from reid_stra.utils.atomic import exclusive_lock

SHARD_KINDS = ("ivf", "ivfpq")
_SHARD_SPLIT = re.compile(r"\.shard-\d+-of-(\d+)\.faiss")


def trained_path(features_file: str | os.PathLike) -> Path:
    """``feats.npy`` -> ``feats.trained.faiss``."""
    return index_path(features_file).with_suffix(".trained.faiss")


def shard_path(features_file: str | os.PathLike, shard: int, shards: int) -> Path:
    """``feats.npy``, 2, 3 -> ``feats.shard-2-of-3.faiss``."""
    return index_path(features_file).with_suffix(f".shard-{shard}-of-{shards}.faiss")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``: shard 2 of 3, counted from 1."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise ReidError(f"--shard {text}: give I/N with 1 <= I <= N (e.g. 2/3: the second of 3 shards)")
    return int(match[1]), int(match[2])


def shard_rows(count: int, shard: int, shards: int) -> tuple[int, int]:
    """Rows ``start:stop`` of shard ``shard`` of ``shards`` (contiguous, sizes differing by at most 1)."""
    return count * (shard - 1) // shards, count * shard // shards


def save_trained(
    features: np.ndarray, features_file: str | os.PathLike, meta: FeatureMeta, kind: str, **options: Any
) -> tuple[Path, SearchIndex]:
    """Train an on-disk ``kind`` index over ``features`` (``options`` as :func:`build_index`) and
    save it, empty, as the one every shard is added to."""
    if kind not in SHARD_KINDS:
        raise ReidError(
            f"--trained-only: shards are merged as inverted lists, which only --kind ivf and ivfpq "
            f"have (got --kind {kind})"
        )
    path = trained_path(features_file)
    with exclusive_lock(path):
        trained = build_index(features, kind, on_disk=True, trained_only=True, **options)
        write_index_file(trained.index, path, describe_index(trained, meta, part="trained"))
    return path, trained


def build_shard(
    features: np.ndarray,
    features_file: str | os.PathLike,
    meta: FeatureMeta,
    shard: int,
    shards: int,
    *,
    progress: bool = True,
) -> tuple[Path, SearchIndex, tuple[int, int]]:
    """Add shard ``shard`` of ``shards`` of ``features`` to a copy of the trained index and save it.

    Reads only the shard's rows: the features are trusted by their sidecar's checksum, which the
    trained index records (``--trained-only`` verified it against the array).
    """
    trained, saved, checksum = _read_trained(features_file, meta)
    start, stop = shard_rows(meta.count, shard, shards)
    built = SearchIndex(saved["kind"], saved["metric"], 0, int(saved["dim"]), trained, None, saved["params"])
    path = shard_path(features_file, shard, shards)
    with exclusive_lock(path):
        add_vectors(built, features, start, stop, progress=progress)
        description = describe_index(
            built,
            meta,
            part="shard",
            shard=shard,
            shards=shards,
            rows=[start, stop],
            trained_checksum=checksum,
        )
        write_index_file(built.index, path, description)
    return path, built, (start, stop)


def merge_shards(
    features_file: str | os.PathLike, meta: FeatureMeta, shards: int | None = None
) -> tuple[Path, SearchIndex]:
    """Merge the shards' inverted lists into the on-disk index beside the features.

    ``shards``: how many the gallery was split into (default: what the shard files say). A
    missing shard, one of other features or one added to another trained index is refused,
    naming the file and the command that rebuilds it.
    """
    trained, saved, checksum = _read_trained(features_file, meta)
    files = _complete_shards(features_file, meta, shards, checksum)
    params = {key: value for key, value in saved["params"].items() if key != "build_seconds"}
    params["shards"] = len(files)
    merged = SearchIndex(saved["kind"], saved["metric"], meta.count, int(saved["dim"]), trained, None, params)
    with exclusive_lock(index_path(features_file)):
        path = save_index(merged, features_file, meta, shards=files)
    return path, merged


def _read_trained(features_file: str | os.PathLike, meta: FeatureMeta) -> tuple[Any, dict[str, Any], str]:
    """The trained index, its description and the checksum of its file, checked against ``meta``."""
    path = trained_path(features_file)
    again = f"run `reid-stra index build {features_path(features_file)} --kind ivf|ivfpq --trained-only`"
    saved = read_description(path)
    if saved is None or not path.is_file():
        raise ReidError(f"{path}: no trained index to add shards to; {again} first")
    if not file_is_complete(path, saved):
        raise ReidError(f"{path}: incomplete (its size differs from its description); {again}")
    if saved.get("features_checksum") != meta.checksum:
        raise ReidError(f"{path}: trained on other features than {features_path(features_file)}; {again}")
    data = path.read_bytes()
    index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    return index, saved, "sha256:" + hashlib.sha256(data).hexdigest()


def _complete_shards(
    features_file: str | os.PathLike, meta: FeatureMeta, shards: int | None, trained_checksum: str
) -> list[Path]:
    """The files of shards 1..N in order, each present, complete and of these features and training."""
    features = features_path(features_file)
    if shards is None:
        found = _splits(features)
        if not found:
            raise ReidError(
                f"no shards of {features} ({shard_path(features, 1, 2).name}, ...); build them with "
                f"`reid-stra index build {features} --shard I/N` after `--trained-only`"
            )
        if len(found) > 1:
            splits = " and ".join(str(n) for n in sorted(found))
            raise ReidError(
                f"shards of {features} from splits into {splits} parts are there; "
                "pass --shards N to merge one split"
            )
        shards = found.pop()
    if shards < 1:
        raise ReidError(f"--shards {shards}: must be at least 1")
    files = [shard_path(features, shard, shards) for shard in range(1, shards + 1)]
    if missing := [shard for shard, path in enumerate(files, 1) if not path.is_file()]:
        build = f"`reid-stra index build {features} --shard"
        if len(missing) == 1:
            raise ReidError(f"{files[missing[0] - 1]}: missing; build it with {build} {missing[0]}/{shards}`")
        raise ReidError(
            f"shards {', '.join(map(str, missing))} of {shards} are missing ({files[missing[0] - 1]}, ...); "
            f"build each with {build} I/{shards}`"
        )
    for shard, path in enumerate(files, 1):
        again = f"`reid-stra index build {features} --shard {shard}/{shards}`"
        saved = read_description(path)
        if saved is None or not file_is_complete(path, saved):
            raise ReidError(
                f"{path}: incomplete (no description, or its size differs); build it again with {again}"
            )
        if saved.get("features_checksum") != meta.checksum:
            raise ReidError(f"{path}: built from other features than {features}; build it again with {again}")
        if saved.get("trained_checksum") != trained_checksum:
            raise ReidError(
                f"{path}: added to another trained index than {trained_path(features).name} (it was trained "
                f"again since); build it again with {again}"
            )
    return files


def _splits(features: Path) -> set[int]:
    """Into how many shards the shard files beside ``features`` split it (one number per split)."""
    base = index_path(features).with_suffix("")
    names = (path.name[len(base.name) :] for path in base.parent.glob(glob.escape(base.name) + ".shard-*"))
    return {int(match[1]) for name in names if (match := _SHARD_SPLIT.fullmatch(name))}
