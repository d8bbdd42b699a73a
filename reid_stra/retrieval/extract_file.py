"""Resumable extraction into a feature file (what ``reid-stra extract`` runs).

Extraction of a large gallery can take hours on a CPU, so it proceeds in chunks: each finished
chunk is saved atomically to ``<out>.partial/`` next to a manifest tying the folder to the exact
inputs, model weights and preprocessing. ``resume=True`` reuses the finished chunks (only when
all of that matches) and extracts the rest; the final write streams the chunks one at a time
into ``<out>`` (checksum computed on the way, so memory does not grow with the gallery), writes the
sidecar, both atomically, and removes the partial folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from reid_stra.errors import Interrupted, ReidError
from reid_stra.retrieval.extract import (
    Preprocess,
    checked_input_size,
    iterate_batches,
    unreadable_error,
)
from reid_stra.retrieval.features import DTYPES, FeatureMeta, features_path, save_features_streamed
from reid_stra.retrieval.ids import IdSource
from reid_stra.utils.atomic import atomic_save_npy, atomic_write_json, exclusive_lock
from reid_stra.utils.distributed import DistContext, all_gather_objects, broadcast_from_main
from reid_stra.utils.notice import Notice, silent

PARTIAL_FORMAT = "reid-stra-partial-extraction"
_MANIFEST = "manifest.json"


@dataclass
class ExtractSummary:
    """What happened, for the CLI to report."""

    meta: FeatureMeta | None  # None on torchrun ranks other than 0 (rank 0 writes the file)
    extracted: int  # images run through the model in this call
    reused: int  # images whose features came from finished chunks of an earlier run
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    per_process: list[int] = field(default_factory=list)  # images given to each process (torchrun rank)


def partial_dir(out: str | os.PathLike) -> Path:
    """Where the finished chunks of an unfinished extraction into ``out`` are kept."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def check_extract_options(
    batch_size: int, workers: int, chunk_size: int | None, dtype: str = "float32"
) -> int:
    """Refuse bad counts and types before any model is loaded; returns the chunk size to use."""
    if dtype not in DTYPES:
        raise ReidError(f"--dtype {dtype}: choose {' or '.join(DTYPES)}")
    if batch_size < 1:
        raise ReidError(f"--batch-size {batch_size}: must be at least 1")
    if workers < 0:
        raise ReidError(f"--workers {workers}: must be 0 (decode in this process) or more")
    if chunk_size is not None and chunk_size < 1:
        raise ReidError(f"--chunk-size {chunk_size}: must be at least 1")
    return batch_size if chunk_size is None else chunk_size


def extract_to_file(
    model: nn.Module,
    info: dict[str, Any],
    paths: Sequence[str],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    batch_size: int = 64,
    workers: int = 2,
    device: str = "cpu",
    input_size: Sequence[int] | None = None,
    flip: bool = False,
    normalize: bool = True,
    skip_bad: bool = False,
    progress: bool = True,
    optimize: bool = True,
    precision: str = "fp32",
    chunk_size: int | None = None,
    ids: IdSource | None = None,
    notice: Notice | None = None,
    ctx: DistContext | None = None,
    dtype: str = "float32",
) -> ExtractSummary:
    """Extract ``paths`` with ``model`` (described by ``load_model``'s ``info``) into ``out``.

    Work is saved in chunks of ``chunk_size`` images (default: ``batch_size``, so a stop keeps
    every finished batch); ``resume=True`` reuses the finished chunks of the same extraction.

    Under torchrun (``ctx`` from :func:`~reid_stra.utils.distributed.init_distributed`) every rank
    runs this with the same arguments: rank 0 prepares ``<out>.partial/`` and decides which chunks
    are missing, each rank embeds every ``world_size``-th of them, and rank 0 writes ``out`` once
    all have finished. Chunks are keyed by their input range, not by rank, so a stopped run can be
    resumed with any number of processes. Only rank 0's summary has ``meta``. ``dtype="float16"``
    stores half the bytes (chosen at the final write: chunks are float32, so it may change on resume)."""
    ctx = ctx or DistContext()
    notice = (notice or silent) if ctx.is_main else silent
    progress = progress and ctx.is_main
    out = features_path(out)
    chunk_size = check_extract_options(batch_size, workers, chunk_size, dtype)
    cfg = info["cfg"]
    checked_input_size(input_size or cfg.input_size)  # bad options fail before anything is written
    preprocess = Preprocess.for_model(
        cfg, input_size=input_size, flip=flip, normalize=normalize, precision=precision
    )
    paths = list(paths)
    started = time.perf_counter()
    with exclusive_lock(out) if ctx.is_main else contextlib.nullcontext():
        partial = partial_dir(out)
        manifest = _manifest(paths, info, preprocess, chunk_size)
        chunks = [(start, min(start + chunk_size, len(paths))) for start in range(0, len(paths), chunk_size)]
        plan = _plan(partial, manifest, chunks, resume, skip_bad, notice) if ctx.is_main else None
        finished, pending = broadcast_from_main(ctx, plan)  # one plan: ranks never race on the folder
        if not ctx.is_main:
            _check_same_extraction(partial, manifest, ctx.rank)
        reused = sum(end - start for start, end in chunks if start in finished)
        mine = pending[ctx.rank :: ctx.world_size]
        try:
            _extract_chunks(
                model,
                paths,
                mine,
                partial,
                preprocess,
                batch_size,
                workers,
                device,
                skip_bad,
                progress,
                optimize,
            )
        except BaseException as exc:
            kept = sum(end - start for start, end in chunks if _chunk_ok(partial, start, end))
            if kept:
                where = f"{kept} of {len(paths)} images' features are kept in {partial}"
                if isinstance(exc, KeyboardInterrupt):
                    raise Interrupted(f"extraction stopped; {where}", resumable=True) from None
                notice(f"{where}; rerun the same command with --resume to continue")
            elif ctx.is_main:  # nothing worth resuming: leave no half-made folder behind
                shutil.rmtree(partial, ignore_errors=True)
                if isinstance(exc, KeyboardInterrupt):
                    raise Interrupted(f"extraction stopped before any of {len(paths)} images finished; "
                                      f"nothing was written", resumable=False) from None  # fmt: skip
            raise
        # Also the barrier: once every rank has answered, every rank's chunks are on disk.
        per_process = all_gather_objects(ctx, sum(end - start for start, end in mine))
        if not ctx.is_main:
            return ExtractSummary(None, 0, reused, time.perf_counter() - started)
        result = _chunk_index(partial, chunks, len(paths))
        kept_paths = [paths[i] for i in result.kept]
        id_source = ids or IdSource()
        parsed = id_source.parse(kept_paths)
        if (line := parsed.summary(id_source.description)) is not None:
            notice(line)
        meta = FeatureMeta.from_model_info(
            info,
            kept_paths,
            pids=parsed.pids,
            camids=parsed.camids,
            input_size=preprocess.input_size,
            normalized=normalize,
            flip=flip,
            precision=precision,
        )
        meta.skipped = [{"path": path, "reason": reason} for path, reason in result.failures]
        # Chunk by chunk into the file: peak memory is one chunk, whatever the gallery's size.
        save_features_streamed(out, result.blocks, len(result.kept), result.dim, meta, dtype)
        shutil.rmtree(partial, ignore_errors=True)
    extracted = max(0, len(paths) - reused - len(result.failures))  # skipped images are not extracted
    seconds = time.perf_counter() - started
    return ExtractSummary(meta, extracted, reused, seconds, result.failures, per_process)


def _extract_chunks(
    model: nn.Module,
    paths: Sequence[str],
    pending: Sequence[tuple[int, int]],
    partial: Path,
    preprocess: Preprocess,
    batch_size: int,
    workers: int,
    device: str,
    skip_bad: bool,
    progress: bool,
    optimize: bool,
) -> None:
    """Run the model over the pending chunks (one DataLoader), saving each chunk as it completes."""
    if not pending:
        return
    batches: list[list[int]] = []
    owner: list[tuple[int, int]] = []  # the chunk each batch belongs to
    for start, end in pending:
        for first in range(start, end, batch_size):
            batches.append(list(range(first, min(first + batch_size, end))))
            owner.append((start, end))
    collected: dict[int, list] = {}
    stream = iterate_batches(
        model,
        paths,
        batches,
        preprocess,
        workers=workers,
        device=device,
        skip_bad=skip_bad,
        progress=progress,
        optimize=optimize,
    )
    for (start, end), batch in zip(owner, stream, strict=False):
        parts = collected.setdefault(start, [])
        parts.append(batch)
        if sum(len(b.kept) + len(b.failures) for b in parts) == end - start:
            _save_chunk(partial, start, end, parts)
            del collected[start]


def _save_chunk(partial: Path, start: int, end: int, parts: list) -> None:
    features = [b.features for b in parts if b.features.shape[0] > 0]
    dims = {f.shape[1] for f in features}
    array = np.concatenate(features) if features else np.zeros((0, max(dims, default=0)), np.float32)
    kept = [int(i) for b in parts for i in b.kept]
    failures = [list(f) for b in parts for f in b.failures]
    # Array first, description second: a chunk counts as finished only once both exist and agree.
    atomic_save_npy(partial / f"chunk_{start:09d}.npy", array)
    atomic_write_json(
        partial / f"chunk_{start:09d}.json",
        {"start": start, "end": end, "rows": int(array.shape[0]), "kept": kept, "failures": failures},
    )


def _chunk_info(partial: Path, start: int) -> dict[str, Any]:
    return json.loads((partial / f"chunk_{start:09d}.json").read_text(encoding="utf-8"))


def _chunk_ok(partial: Path, start: int, end: int) -> bool:
    """A chunk is reusable when its description and array exist and agree."""
    try:
        info = _chunk_info(partial, start)
        array = np.load(partial / f"chunk_{start:09d}.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return (
        info.get("start") == start
        and info.get("end") == end
        and array.ndim == 2
        and array.shape[0] == info.get("rows") == len(info.get("kept", ()))
        and len(info["kept"]) + len(info.get("failures", ())) == end - start
    )


@dataclass
class _ChunkIndex:
    """What the finished chunks hold, without their features in memory: ``blocks()`` reads them."""

    files: list[Path]
    kept: np.ndarray
    failures: list[tuple[str, str]]
    dim: int

    def blocks(self) -> Iterator[np.ndarray]:
        for file in self.files:
            yield np.load(file, mmap_mode="r", allow_pickle=False)


def _chunk_index(partial: Path, chunks: Sequence[tuple[int, int]], total: int) -> _ChunkIndex:
    files, kept, failures, dim = [], [], [], 0
    for start, _end in chunks:
        info = _chunk_info(partial, start)
        file = partial / f"chunk_{start:09d}.npy"
        rows = np.asarray(info["kept"], dtype=np.int64)
        if rows.size:
            files.append(file)
            dim = dim or int(np.load(file, mmap_mode="r", allow_pickle=False).shape[1])
        kept.append(rows)
        failures.extend((path, reason) for path, reason in info["failures"])
    if not files:
        first = f"; first: {failures[0][1]}" if failures else ""
        raise ReidError(f"none of the {total} images could be read{first}")
    return _ChunkIndex(files, np.concatenate(kept), failures, dim)


def _plan(
    partial: Path,
    manifest: dict,
    chunks: Sequence[tuple[int, int]],
    resume: bool,
    skip_bad: bool,
    notice: Notice,
) -> tuple[set[int], list[tuple[int, int]]]:
    """Prepare the partial folder; the starts of the finished chunks and the chunks still to do."""
    _prepare_partial(partial, manifest, resume, notice)
    finished = {start for start, end in chunks if _chunk_ok(partial, start, end)}
    reused_failures = [f for start in sorted(finished) for f in _chunk_info(partial, start)["failures"]]
    if reused_failures and not skip_bad:
        raise unreadable_error([tuple(f) for f in reused_failures])  # type: ignore[misc]
    reused = sum(end - start for start, end in chunks if start in finished)
    if reused:
        notice(f"resuming: {reused} of {sum(e - s for s, e in chunks)} images already extracted in {partial}")
    return finished, [(start, end) for start, end in chunks if start not in finished]


def _check_same_extraction(partial: Path, manifest: dict, rank: int) -> None:
    """A rank other than 0 must see rank 0's folder and the same inputs and options."""
    try:
        shared = json.loads((partial / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ReidError(
            f"rank {rank}: {partial} is not visible here; the output folder must be on a filesystem "
            "that every process (every node) shares"
        ) from None
    differing = [_WHAT[key] for key in _WHAT if shared.get(key) != manifest[key]]
    if differing:
        raise ReidError(
            f"rank {rank}: this process sees a different {', '.join(differing)} than rank 0; run the "
            "same command, with the same inputs, on every process"
        )


def _manifest(paths: Sequence[str], info: dict[str, Any], preprocess: Preprocess, chunk_size: int) -> dict:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode("utf-8", errors="surrogateescape") + b"\0")
    return {
        "format": PARTIAL_FORMAT,
        "images": len(paths),
        "inputs_sha256": digest.hexdigest(),
        "model": info.get("model"),
        "weights_sha256": info.get("weights_sha256"),
        "input_size": list(preprocess.input_size),
        "mean": list(preprocess.mean),
        "std": list(preprocess.std),
        "flip": preprocess.flip,
        "normalize": preprocess.normalize,
        "precision": preprocess.precision,
        "chunk_size": chunk_size,
    }


_WHAT = {
    "images": "number of input images",
    "inputs_sha256": "input image list",
    "model": "model",
    "weights_sha256": "model weights",
    "input_size": "input size",
    "mean": "pixel mean",
    "std": "pixel std",
    "flip": "--flip",
    "normalize": "--normalize",
    "precision": "--precision",
    "chunk_size": "--chunk-size (default: --batch-size)",
}


def _prepare_partial(partial: Path, manifest: dict, resume: bool, notice: Notice) -> None:
    """Keep a matching partial folder when resuming; otherwise start it afresh."""
    manifest_path = partial / _MANIFEST
    if partial.exists() and resume:
        try:
            previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if not isinstance(previous, dict) or previous.get("format") != PARTIAL_FORMAT:
            raise ReidError(
                f"--resume: {partial} has no readable manifest, so its chunks cannot be trusted; "
                "run again without --resume to start over"
            )
        differing = [_WHAT[key] for key in _WHAT if previous.get(key) != manifest[key]]
        if differing:
            raise ReidError(
                f"--resume: the unfinished extraction in {partial} used a different "
                f"{', '.join(differing)}; rerun with the same inputs and options, "
                "or drop --resume to start over"
            )
        return
    if partial.exists():
        notice(f"discarding the unfinished extraction in {partial} (pass --resume to continue it instead)")
        shutil.rmtree(partial)
    elif resume:
        notice("--resume: no unfinished extraction found; starting from the beginning")
    partial.mkdir(parents=True)
    atomic_write_json(manifest_path, manifest)
