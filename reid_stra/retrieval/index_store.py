"""Indexes saved beside their features (``feats.faiss`` + ``feats.faiss.json``) and reused.

A saved index is reused only while its sidecar's features checksum still matches the features;
otherwise it is rebuilt (with a notice) instead of answering for vectors that are no longer there.
An on-disk index keeps its inverted lists in ``feats.faiss.ivfdata`` (see
:mod:`reid_stra.retrieval.index_ondisk`), read through a memory map.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from reid_stra._version import __version__
from reid_stra.errors import ReidError, unknown_name_error
from reid_stra.retrieval.features import FeatureMeta, features_path, load_features
from reid_stra.retrieval.index import (
    INDEX_KINDS,
    SearchIndex,
    build_index,
    default_metric,
    exact_index,
)
from reid_stra.retrieval.index_ondisk import ivfdata_path, lists_on_disk, read_ondisk_index
from reid_stra.utils.atomic import atomic_write_json, atomic_write_with
from reid_stra.utils.notice import Notice, silent

INDEX_FORMAT = "reid-stra-index"
INDEX_FORMAT_VERSION = 1


def index_path(features_file: str | os.PathLike) -> Path:
    """``feats.npy`` -> ``feats.faiss`` (its description is ``feats.faiss.json``)."""
    return features_path(features_file).with_suffix(".faiss")


def index_meta_path(features_file: str | os.PathLike) -> Path:
    return description_path(index_path(features_file))


def description_path(index_file: Path) -> Path:
    """``x.faiss`` -> ``x.faiss.json``, what the index holds and what it was built from."""
    return index_file.with_name(index_file.name + ".json")


def save_index(
    search_index: SearchIndex,
    features_file: str | os.PathLike,
    meta: FeatureMeta,
    *,
    shards: Sequence[Path] = (),
) -> Path:
    """Write the index and its description atomically beside ``features_file``.

    An on-disk index (``on_disk`` in its params) keeps its inverted lists in
    ``feats.faiss.ivfdata``: the lists of ``shards`` (saved indexes added to copies of
    ``search_index``, which is then trained and empty), else its own. The description goes last
    and, for an on-disk index, is removed first, so no description vouches for an index while its
    two files are being replaced.
    """
    if search_index.index is None:
        raise ReidError("exact search over the features needs no saved index; build one with a --kind")
    path = index_path(features_file)
    data = ivfdata_path(path)
    if not search_index.params.get("on_disk"):
        write_index_file(search_index.index, path, describe_index(search_index, meta))
        data.unlink(missing_ok=True)  # the lists of an on-disk index this one replaced
        return path
    with lists_on_disk(search_index.index, shards, data) as (index, written):
        index_meta_path(features_file).unlink(missing_ok=True)
        os.replace(written, data)
        populated = dataclasses.replace(search_index, index=index, count=int(index.ntotal), vectors=None)
        on_disk = {"on_disk": True, "ivfdata": data.name, "ivfdata_bytes": data.stat().st_size}
        write_index_file(index, path, describe_index(populated, meta, **on_disk))
    return path


def describe_index(search_index: SearchIndex, meta: FeatureMeta, **extra: Any) -> dict[str, Any]:
    """The description saved beside an index: what it is and which features it was built from."""
    return {
        "format": INDEX_FORMAT,
        "version": INDEX_FORMAT_VERSION,
        "kind": search_index.kind,
        "metric": search_index.metric,
        "params": search_index.params,
        "count": search_index.count,
        "dim": search_index.dim,
        "features_checksum": meta.checksum,
        **extra,
        "faiss_version": faiss.__version__,
        "tool_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_index_file(index: Any, path: Path, description: dict[str, Any]) -> None:
    """Write a FAISS index, then its description (with the index's size, which says it is
    complete), each atomically."""
    atomic_write_with(path, lambda handle: faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write)))
    atomic_write_json(description_path(path), {**description, "index_bytes": path.stat().st_size})


def read_description(index_file: Path) -> dict[str, Any] | None:
    """The description saved beside ``index_file``, or None when there is none (or unreadable)."""
    try:
        data = json.loads(description_path(index_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == INDEX_FORMAT else None


def read_index_meta(features_file: str | os.PathLike) -> dict[str, Any] | None:
    """The saved index's description, or None when there is none (or it is unreadable)."""
    return read_description(index_path(features_file))


def file_is_complete(path: Path, saved: dict[str, Any]) -> bool:
    """True when ``path`` has the size its description recorded (and, for an on-disk index, its
    inverted lists' file too)."""
    try:
        complete = path.stat().st_size == saved.get("index_bytes")
        if saved.get("on_disk"):
            complete = complete and ivfdata_path(path).stat().st_size == saved.get("ivfdata_bytes")
        return complete
    except OSError:
        return False


def index_is_current(
    saved: dict[str, Any] | None, features_file: str | os.PathLike, meta: FeatureMeta
) -> bool:
    """True when the saved index was built from exactly these features and is complete on disk."""
    if saved is None or saved.get("features_checksum") != meta.checksum:
        return False
    return file_is_complete(index_path(features_file), saved)


def load_or_build_index(
    features_file: str | os.PathLike,
    kind: str = "auto",
    *,
    features: np.ndarray | None = None,
    meta: FeatureMeta | None = None,
    metric: str | None = None,
    nlist: int | None = None,
    nprobe: int | None = None,
    m: int | None = None,
    ef_search: int | None = None,
    pca: int | None = None,
    rerank: int | None = None,
    save: bool = True,
    rebuild: bool = False,
    progress: bool = True,
    kind_option: str = "--kind",
    notice: Notice | None = None,
) -> SearchIndex:
    """The index to search ``features_file`` with.

    ``kind="auto"`` uses the saved index when it is current, else exact search. A named kind
    reuses the saved index when it is current and of that kind (search-time options such as
    ``nprobe`` apply either way), else builds one and, unless ``save=False`` or it is flat, saves
    it. A current saved index of another kind or build is never replaced unless ``rebuild``: the
    one built is then used for this search only. A stale saved index is rebuilt with a notice.
    """
    notice = notice or silent
    on_disk = False
    if kind != "auto" and kind not in INDEX_KINDS:
        raise unknown_name_error("index kind", kind, ("auto", *INDEX_KINDS))
    if features is None or meta is None:
        features, meta = load_features(features_file)
    metric = metric or default_metric(meta)
    saved = read_index_meta(features_file)
    build_options = {"nlist": nlist, "m": m, "pca": pca}
    current = saved is not None and index_is_current(saved, features_file, meta)
    if current:
        same_build = all(v is None or saved["params"].get(k) == v for k, v in build_options.items())
        if kind in ("auto", saved["kind"]) and saved["metric"] == metric and same_build and not rebuild:
            return _load_saved(
                features_file, saved, features, nprobe=nprobe, ef_search=ef_search, rerank=rerank
            )
    elif saved is not None:
        notice(f"{index_path(features_file)} was built for other features; rebuilding it")
    keep_saved = current and not rebuild  # a user's current index is replaced only when asked
    if saved is not None and kind == "auto" and not keep_saved:
        # rebuild the same kind of index with the same build options
        kind = saved["kind"]
        nlist, m = nlist or saved["params"].get("nlist"), m or saved["params"].get("m")
        pca = pca or saved["params"].get("pca")
        on_disk = bool(saved["params"].get("on_disk"))
    if kind in ("auto", "flat"):
        return exact_index(features, metric)
    if keep_saved:
        notice(
            f"building an index of kind {kind} over {meta.count} vectors for this search only: the "
            f"saved {saved['kind']} index {index_path(features_file)} is kept (--rebuild-index replaces it)"
        )
    else:
        target = index_path(features_file)
        notice(f"building an index of kind {kind} over {meta.count} vectors (saved to {target} for reuse)")
    built = build_index(
        features,
        kind,
        metric=metric,
        nlist=nlist,
        nprobe=nprobe,
        m=m,
        ef_search=ef_search,
        pca=pca,
        rerank=rerank,
        on_disk=on_disk,
        progress=progress,
        kind_option=kind_option,
    )
    if save and not keep_saved:
        save_index(built, features_file, meta)
    return built


def _load_saved(
    features_file: str | os.PathLike, saved: dict[str, Any], features: np.ndarray, **search_time: Any
) -> SearchIndex:
    path = index_path(features_file)
    try:
        index = read_ondisk_index(path) if saved.get("on_disk") else faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ReidError(
            f"{path}: unreadable FAISS index ({' '.join(str(exc).split())[:200]}); "
            "rebuild it with `reid-stra index build`"
        ) from None
    params = dict(saved["params"])
    for key, value in search_time.items():
        if value is not None and value < 1:
            raise ReidError(f"--{key.replace('_', '-')} {value}: must be at least 1")
    params.update({key: value for key, value in search_time.items() if value is not None and key in params})
    vectors = features if params.get("rerank") else None
    return SearchIndex(
        saved["kind"], saved["metric"], int(saved["count"]), int(saved["dim"]), index, vectors, params
    )
