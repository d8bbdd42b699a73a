"""The feature-file format: ``X.npy`` (float32 N x D) plus the sidecar ``X.json``.

A bare array of numbers is useless and dangerous on its own: without knowing which image each
row came from, and which model and preprocessing produced it, a search can silently compare
apples with oranges. The sidecar records all of that, plus a checksum of the array, so a
sidecar left over from another run (or an array replaced by hand) is detected on load instead
of producing nonsense.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from reid_stra._version import __version__
from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from reid_stra.data.images import is_image_file
from reid_stra.errors import ReidError
from reid_stra.retrieval.mapped import row_blocks
from reid_stra.utils.atomic import atomic_save_npy, atomic_write_json, atomic_write_with

FORMAT = "reid-stra-features"
FORMAT_VERSION = 2  # 2: float16 arrays (``dtype`` in the sidecar); float32 files are still written as 1
DTYPES = ("float32", "float16")  # how rows are stored; readers always get float32
# Arrays above this size are memory-mapped on load instead of read into RAM.
MMAP_THRESHOLD_BYTES = 256 * 1024 * 1024
_CHUNK_ROWS = 65_536
_SHOW = 5  # how many bad rows an error lists before "(+N more)"


@dataclass
class FeatureMeta:
    """Everything needed to interpret (and trust) the rows of a feature array."""

    paths: list[str]
    pids: list[int | None] | None = None  # per row; None where the image has no known id
    camids: list[int | None] | None = None
    model: str | None = None
    weights: str | None = None
    weights_sha256: str | None = None
    # The PyTorch weights the features come from: weights_sha256 itself, or for an exported .onnx
    # the checksum of the weights it was exported from (same weights, same space, either backend).
    source_weights_sha256: str | None = None
    backend: str = "pytorch"  # what ran the model: pytorch, or onnxruntime for an exported .onnx
    input_size: list[int] = field(default_factory=lambda: list(DEFAULT_INPUT_SIZE))
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    normalized: bool = True
    flip: bool = False
    precision: str = "fp32"  # the arithmetic the model ran in (the features are float32 either way)
    embedding_dim: int = 0
    count: int = 0
    checksum: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)
    dtype: str = "float32"  # how the rows are stored on disk (float16: half the bytes)
    tool_version: str = __version__
    created: str = ""
    format: str = FORMAT
    version: int = 1

    @property
    def images_with_ids(self) -> int:
        """Rows whose person and camera ids are both known."""
        if self.pids is None or self.camids is None:
            return 0
        return sum(p is not None and c is not None for p, c in zip(self.pids, self.camids, strict=True))

    @classmethod
    def from_model_info(
        cls,
        info: dict[str, Any],
        paths: Sequence[str],
        *,
        pids: Sequence[int | None] | None = None,
        camids: Sequence[int | None] | None = None,
        input_size: Sequence[int] | None = None,
        normalized: bool = True,
        flip: bool = False,
        precision: str = "fp32",
    ) -> FeatureMeta:
        """Describe features made by the model that ``load_model`` returned ``info`` for."""
        cfg = info["cfg"]
        return cls(
            paths=list(paths),
            pids=_optional_ints(pids),
            camids=_optional_ints(camids),
            model=info.get("model"),
            weights=None if info.get("weights") is None else os.path.abspath(info["weights"]),
            weights_sha256=info.get("weights_sha256"),
            source_weights_sha256=info.get("source_weights_sha256") or info.get("weights_sha256"),
            backend=str(info.get("backend", "pytorch")),
            input_size=[int(v) for v in (input_size or cfg.input_size)],
            mean=[float(v) for v in cfg.mean],
            std=[float(v) for v in cfg.std],
            normalized=normalized,
            flip=flip,
            precision=precision,
            embedding_dim=int(cfg.embedding_dim),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Put the identifying fields first so the sidecar reads well in a text editor.
        head = ("format", "version", "count", "embedding_dim", "model", "weights", "weights_sha256")
        return {**{key: data[key] for key in head}, **{k: v for k, v in data.items() if k not in head}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> FeatureMeta:
        known = set(cls.__dataclass_fields__)
        missing = [name for name in ("paths", "embedding_dim", "count", "checksum") if name not in data]
        if missing:
            raise ReidError(
                f"{source}: sidecar lacks {', '.join(missing)}; regenerate it with `reid-stra extract`"
            )
        return cls(**{key: value for key, value in data.items() if key in known})


def _optional_ints(values: Sequence[int | None] | None) -> list[int | None] | None:
    return None if values is None else [None if v is None else int(v) for v in values]


def sidecar_path(features_path: str | os.PathLike) -> Path:
    """``feats.npy`` -> ``feats.json``."""
    return Path(features_path).with_suffix(".json")


def features_path(path: str | os.PathLike, option: str | None = None, *, output: bool = False) -> Path:
    """Accept either half of a feature file (``feats.npy`` or ``feats.json``); return the ``.npy``.

    ``option`` (``--gallery``, ``-o``) names where the path came from in the error; ``output``:
    the file is to be written (an image name then gets the ``.npy`` suggestion too)."""
    path = Path(path)
    if path.suffix == ".json":
        return path.with_suffix(".npy")
    if path.suffix != ".npy":
        named = f"{option} {path}" if option else str(path)
        if is_image_file(path.name) and not output:
            raise ReidError(
                f"{named}: an image, not a feature file; give the .npy that `reid-stra extract` wrote "
                "(it has a .json sidecar beside it)"
            )
        raise ReidError(
            f"{named}: feature files end in .npy (with a .json sidecar); use e.g. {path.with_suffix('.npy')}"
        )
    return path


def array_checksum(array: np.ndarray) -> str:
    """sha256 of shape, dtype and data (row blocks, so a memory-mapped array is never fully read in)."""
    digest = hashlib.sha256(f"{array.shape}|{array.dtype.str}|".encode())
    for _, block in row_blocks(array):
        digest.update(memoryview(block).cast("B"))
    return "sha256:" + digest.hexdigest()


def nonfinite_rows(array: np.ndarray) -> np.ndarray:
    """Indices of rows holding NaN or inf (checked in row blocks)."""
    bad = [start + np.flatnonzero(~np.isfinite(block).all(axis=1)) for start, block in row_blocks(array)]
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def save_features(
    path: str | os.PathLike, features: np.ndarray, meta: FeatureMeta, dtype: str = "float32"
) -> FeatureMeta:
    """Write ``path`` (.npy) and its sidecar atomically; fills count, dim, checksum and date.

    The array goes first and the sidecar second: a reader that catches the moment between the
    two sees a checksum mismatch (a clear error), never a wrong-but-plausible pairing.
    ``dtype="float16"`` stores half the bytes; readers get float32 back either way.
    """
    path = features_path(path)
    stored = _stored_dtype(dtype)
    features = _converted(_as_feature_array(features, str(path)), stored, path, 0)
    if len(meta.paths) != features.shape[0]:
        raise ReidError(f"{path}: {features.shape[0]} feature rows but {len(meta.paths)} image paths")
    for name in ("pids", "camids"):
        values = getattr(meta, name)
        if values is not None and len(values) != features.shape[0]:
            raise ReidError(f"{path}: {features.shape[0]} feature rows but {len(values)} {name}")
    meta.count, meta.embedding_dim = int(features.shape[0]), int(features.shape[1])
    meta.dtype, meta.version = stored.name, _version(stored)
    meta.checksum = array_checksum(features)
    meta.tool_version = __version__
    meta.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_save_npy(path, features)
    atomic_write_json(sidecar_path(path), meta.to_dict())
    return meta


def save_features_streamed(
    path: str | os.PathLike,
    blocks: Callable[[], Iterable[np.ndarray]],
    rows: int,
    dim: int,
    meta: FeatureMeta,
    dtype: str = "float32",
) -> FeatureMeta:
    """:func:`save_features` for a file bigger than memory: the row blocks that ``blocks()``
    yields (in order, ``rows`` x ``dim`` float32 in all) are written one at a time, with the
    checksum and the NaN check made on the way, so peak memory is one block, not the array.
    The file and checksum are those :func:`save_features` writes for the concatenated array.
    ``dtype="float16"`` stores half the bytes (rows are converted block by block)."""
    path = features_path(path)
    stored = _stored_dtype(dtype)
    if len(meta.paths) != rows:
        raise ReidError(f"{path}: {rows} feature rows but {len(meta.paths)} image paths")
    for name in ("pids", "camids"):
        values = getattr(meta, name)
        if values is not None and len(values) != rows:
            raise ReidError(f"{path}: {rows} feature rows but {len(values)} {name}")
    digest = hashlib.sha256(f"{(rows, dim)}|{stored.str}|".encode())

    def write(handle: IO[bytes]) -> None:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": stored.str, "fortran_order": False, "shape": (rows, dim)}
        )
        done = 0
        for block in blocks():
            block = np.ascontiguousarray(_as_feature_array(block, str(path)))
            if block.shape[1] != dim or done + block.shape[0] > rows:
                raise ReidError(f"{path}: a block of shape {block.shape} does not fit {rows} x {dim}")
            block = _converted(block, stored, path, done)
            data = memoryview(block).cast("B")
            digest.update(data)
            handle.write(data)
            done += block.shape[0]
        if done != rows:
            raise ReidError(f"{path}: {done} feature rows written, {rows} expected")

    atomic_write_with(path, write)
    meta.count, meta.embedding_dim = rows, dim
    meta.dtype, meta.version = stored.name, _version(stored)
    meta.checksum = "sha256:" + digest.hexdigest()
    meta.tool_version = __version__
    meta.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_json(sidecar_path(path), meta.to_dict())
    return meta


def load_meta(path: str | os.PathLike) -> FeatureMeta:
    """Read and validate only the sidecar (cheap: no array access)."""
    path = features_path(path)
    side = sidecar_path(path)
    if not side.is_file():
        raise ReidError(
            f"{side}: sidecar of {path} is missing, so its rows cannot be trusted; "
            f"regenerate both with `reid-stra extract IMAGES... -o {path}`"
        )
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReidError(
            f"{side}: unreadable sidecar ({_one_line(exc)}); regenerate it with `reid-stra extract`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReidError(f"{side}: not a reid-stra feature sidecar (format is not '{FORMAT}')")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise ReidError(
            f"{side}: feature format version {data['version']} is newer than this reid-stra "
            f"understands ({FORMAT_VERSION}); upgrade reid-stra"
        )
    return FeatureMeta.from_dict(data, str(side))


def load_features(
    path: str | os.PathLike, *, mmap: bool | None = None, verify: bool = True, as_float32: bool = True
) -> tuple[np.ndarray, FeatureMeta]:
    """Load ``(features, meta)``, checking that array and sidecar belong together.

    ``mmap=None`` memory-maps large files (read-only). ``verify`` recomputes the checksum, which
    reads the whole array once. A float16 file comes back as float32 (a copy in memory) unless
    ``as_float32=False``, which keeps it as stored, memory-mapped if large, for readers that
    convert block by block (``index build``).
    """
    path = features_path(path)
    if not path.is_file():
        raise ReidError(
            f"{path}: feature file not found; create it with `reid-stra extract IMAGES... -o {path}`"
        )
    meta = load_meta(path)
    if meta.dtype not in DTYPES:
        raise ReidError(
            f"{sidecar_path(path)}: rows stored as {meta.dtype}; this reid-stra reads {' or '.join(DTYPES)} "
            "(upgrade reid-stra or re-run `reid-stra extract`)"
        )
    if mmap is None:
        mmap = path.stat().st_size > MMAP_THRESHOLD_BYTES
    try:
        features = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ReidError(
            f"{path}: not a readable .npy array, or truncated ({_one_line(exc)}); re-run `reid-stra extract`"
        ) from None
    features = _as_feature_array(features, str(path), convert=False, stored=meta.dtype)
    rows, dim = features.shape
    if rows != meta.count or dim != meta.embedding_dim or len(meta.paths) != rows:
        raise ReidError(
            f"{path}: array is {rows}x{dim} but its sidecar describes {meta.count}x{meta.embedding_dim} "
            f"({len(meta.paths)} paths); they come from different runs, re-run `reid-stra extract`"
        )
    if verify:
        if array_checksum(features) != meta.checksum:
            raise ReidError(
                f"{path}: array does not match the checksum in {sidecar_path(path).name} (the sidecar "
                "belongs to another run or the array was modified); re-run `reid-stra extract`"
            )
        bad = nonfinite_rows(features)
        if bad.size:
            raise ReidError(f"{path}: NaN/inf values in rows {_rows(bad)}; re-extract those images")
    if as_float32 and features.dtype != np.float32:  # float16 on disk: search and metrics use float32
        features = features.astype(np.float32)
    return features, meta


def check_compatible(query: FeatureMeta, gallery: FeatureMeta, query_name: str, gallery_name: str) -> None:
    """Raise when two feature sets live in different spaces (comparing them would be nonsense).

    Model, source weights, dimension, L2 normalization, input size and pixel normalization must
    all agree; test-time flip averaging and the backend may differ (an ONNX export of the same
    weights gives the same features to within float error).
    """
    checks = [
        ("embedding dimension", query.embedding_dim, gallery.embedding_dim),
        ("model", query.model, gallery.model),
        ("source weights checksum", _source(query), _source(gallery)),
        ("L2 normalization", query.normalized, gallery.normalized),
        ("input size", list(query.input_size), list(gallery.input_size)),
        ("pixel mean", _rounded(query.mean), _rounded(gallery.mean)),
        ("pixel std", _rounded(query.std), _rounded(gallery.std)),
    ]
    for what, mine, theirs in checks:
        if mine != theirs:
            raise ReidError(
                f"{query_name}: {what} {_short(mine)} differs from {gallery_name}'s {_short(theirs)}; "
                "query and gallery features must come from the same model and settings "
                "(re-extract one of them)"
            )


def _source(meta: FeatureMeta) -> str | None:
    """The PyTorch weights behind the features: the file that ran, unless an export ran (older
    sidecars have no source checksum: their own weights' stands for it)."""
    if meta.backend == "pytorch":
        return meta.weights_sha256
    return meta.source_weights_sha256 or meta.weights_sha256


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(float(v), 6) for v in values]


def _short(value: Any) -> str:
    if isinstance(value, str) and value.startswith("sha256:"):
        value = value[:19]
    elif isinstance(value, str) and len(value) == 64:
        value = value[:12]
    return repr(value)


def _as_feature_array(array: Any, source: str, convert: bool = True, stored: str = "float32") -> np.ndarray:
    if not isinstance(array, np.ndarray):  # keep np.memmap as is (no copy into RAM)
        array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ReidError(f"{source}: features must be a 2-D N x D array, got shape {array.shape}")
    if array.dtype != np.dtype(stored if stored in DTYPES else "float32"):
        if not convert:
            raise ReidError(
                f"{source}: features must be {stored} (as its sidecar says), got {array.dtype}; "
                "re-run `reid-stra extract`"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise ReidError(f"{source}: features must be floating point, got {array.dtype}")
        array = array.astype(np.float32)
    return array


def _stored_dtype(dtype: str) -> np.dtype:
    if dtype not in DTYPES:
        raise ReidError(f"dtype {dtype}: features are stored as {' or '.join(DTYPES)}")
    return np.dtype(dtype)


def _version(stored: np.dtype) -> int:
    """Readers from before float16 refuse a float16 file by its version ("upgrade reid-stra")."""
    return 1 if stored == np.float32 else FORMAT_VERSION


def _converted(block: np.ndarray, stored: np.dtype, path: Path, first_row: int) -> np.ndarray:
    """``block`` as stored, refused if any row is (or becomes, past float16's range) NaN/inf."""
    bad = nonfinite_rows(block)
    if bad.size:
        raise ReidError(f"{path}: refusing to save features with NaN/inf in rows {_rows(bad + first_row)}")
    if block.dtype == stored:
        return block
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below with the rows
        converted = np.ascontiguousarray(block.astype(stored))
    bad = nonfinite_rows(converted)
    if bad.size:
        raise ReidError(
            f"{path}: rows {_rows(bad + first_row)} exceed float16's range (|x| > 65504); "
            "store them as float32, or L2-normalize the features"
        )
    return converted


def _rows(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:_SHOW])
    return shown + (f" (+{indices.size - _SHOW} more)" if indices.size > _SHOW else "")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
