"""INT8 export: ONNX Runtime's static quantization, calibrated on the user's own crops.

The format is QDQ with per-channel int8 weights and uint8 activations (ONNX Runtime's x86 integer
kernels take u8 activations with s8 weights; int8 activations run slower there) and MinMax ranges
from the calibration crops. Which layers lose accuracy is measured, not assumed: on MobileNetV2 it is
the first convolutions (the stem and the first depthwise convolution, whose BatchNorm-folded
per-channel ranges are wide), not the last blocks or the embedding. So the leading convolutions are
kept in fp32 one more at a time until the held-out crops' mean cosine to the fp32 model reaches
``COSINE_FLOOR``, or a fixed count is kept when the caller says so. Held-out crops are never
calibration crops, so the parity report is not measured on what was fitted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from reid_stra.deploy.export import EXPORT_EXTRA, OPSET, OUR_KEY, export_model, metadata_path
from reid_stra.errors import ReidError
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.utils.atomic import atomic_write_json, atomic_write_with

COSINE_FLOOR = 0.995  # mean cosine to fp32 on held-out crops that the automatic search stops at
MAX_FP32_LAYERS = 8  # the automatic search gives up keeping more leading convolutions after this
MIN_CROPS = 8  # fewer calibration crops than this cannot fit ranges and keep some held out
HELD_OUT = 64  # held-out crops for the parity report (fewer when few crops are given)
_CALIBRATION_BATCH = 16
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Int8Attempt:
    """One quantization tried: how many leading convolutions stayed fp32 and what it cost."""

    fp32_layers: int
    cosine_mean: float
    cosine_min: float


@dataclass
class Int8Report:
    """What the metadata's ``int8`` block says: the recipe, the calibration and the parity."""

    calibration_crops: int
    held_out_crops: int
    seed: int
    fp32_layers: int
    fp32_layer_names: list[str]
    cosine_mean: float
    cosine_min: float
    cosine_floor: float
    attempts: list[Int8Attempt] = field(default_factory=list)
    scheme: str = "QDQ, per-channel int8 weights, uint8 activations, MinMax calibration"

    def as_dict(self) -> dict:
        return asdict(self)


def split_crops(paths: Sequence[str], calibration_size: int, seed: int) -> tuple[list[str], list[str]]:
    """Shuffle ``paths`` with ``seed``; the held-out crops first (up to ``HELD_OUT``, a fifth of a
    small set), then up to ``calibration_size`` calibration crops from the rest."""
    if calibration_size < 1:
        raise ReidError(f"calibration_size {calibration_size}: must be at least 1")
    unique = sorted(set(paths))
    if len(unique) < MIN_CROPS:
        raise ReidError(
            f"calibration crops: {len(unique)} image(s) given; int8 calibration needs at least "
            f"{MIN_CROPS} (a few hundred of your own crops is best)"
        )
    random.Random(seed).shuffle(unique)
    held = min(HELD_OUT, max(1, len(unique) // 5))
    return unique[held : held + calibration_size], unique[:held]


def leading_weighted_layers(onnx_path: str | Path) -> list[str]:
    """Names of the graph's convolution / matrix-product nodes in execution (topological) order."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    return [node.name for node in graph.node if node.op_type in _WEIGHTED_OPS]


def cosine_to(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(N, D)`` feature arrays."""
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    oth = other / np.maximum(np.linalg.norm(other, axis=1, keepdims=True), 1e-12)
    return (ref * oth).sum(axis=1)


def quantize_int8(
    fp32_onnx: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    held_out: np.ndarray,
    *,
    fp32_layers: int | None = None,
    seed: int = 0,
    notice: Callable[[str], None] = lambda _message: None,
) -> Int8Report:
    """Write the int8 model of ``fp32_onnx`` to ``out`` (atomically) and say how close it is.

    ``calibration`` and ``held_out`` are preprocessed ``(N, 3, H, W)`` float32 batches.
    ``fp32_layers=None`` searches the number of leading convolutions kept in fp32 (0, 1, 2, ...)
    until the held-out mean cosine reaches ``COSINE_FLOOR``; otherwise exactly that many are kept.
    """
    try:
        import onnxruntime  # noqa: F401
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ReidError(f"int8 export needs onnxruntime; {EXPORT_EXTRA}") from None
    if fp32_layers is not None and fp32_layers < 0:
        raise ReidError(f"fp32_layers {fp32_layers}: must be 0 or more (or None to search)")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="reid-stra-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        _quiet(lambda: quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True))
        layers = leading_weighted_layers(prepared)
        reference = _run(str(fp32_onnx), held_out)
        counts = [fp32_layers] if fp32_layers is not None else range(min(MAX_FP32_LAYERS, len(layers)) + 1)
        attempts: list[Int8Attempt] = []
        best: tuple[float, Path] | None = None
        for count in counts:
            candidate = Path(scratch) / f"int8_{count}.onnx"
            _quantize(prepared, candidate, calibration, layers[:count])
            cosine = cosine_to(reference, _run(str(candidate), held_out))
            attempts.append(Int8Attempt(count, float(cosine.mean()), float(cosine.min())))
            notice(
                f"int8 with the first {count} convolution(s) in fp32: held-out cosine to fp32 "
                f"mean {cosine.mean():.4f}, min {cosine.min():.4f}"
            )
            if best is None or cosine.mean() > best[0]:
                best = (float(cosine.mean()), candidate)
            if cosine.mean() >= COSINE_FLOOR:
                break
        assert best is not None
        chosen = next(a for a in attempts if a.cosine_mean == best[0])
        data = best[1].read_bytes()
    atomic_write_with(out, lambda handle: handle.write(data))
    return Int8Report(
        calibration_crops=len(calibration),
        held_out_crops=len(held_out),
        seed=seed,
        fp32_layers=chosen.fp32_layers,
        fp32_layer_names=layers[: chosen.fp32_layers],
        cosine_mean=chosen.cosine_mean,
        cosine_min=chosen.cosine_min,
        cosine_floor=COSINE_FLOOR,
        attempts=attempts,
    )


def _quantize(prepared: Path, out: Path, calibration: np.ndarray, keep_fp32: list[str]) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Batches(CalibrationDataReader):
        def __init__(self) -> None:
            name = _input_name(str(prepared))
            starts = range(0, len(calibration), _CALIBRATION_BATCH)
            self._batches = iter([{name: calibration[s : s + _CALIBRATION_BATCH]} for s in starts])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    _quiet(
        lambda: quantize_static(
            str(prepared),
            str(out),
            _Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_fp32,
        )
    )


def _session(path: str):
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _input_name(path: str) -> str:
    """The graph's input name, read from the file (no inference session: this runs per attempt)."""
    import onnx

    return onnx.load(path, load_external_data=False).graph.input[0].name


def _run(path: str, images: np.ndarray) -> np.ndarray:
    session = _session(path)
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: images[s : s + 32]})[0] for s in range(0, len(images), 32)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def _quiet(action: Callable[[], object]) -> None:
    """ONNX Runtime's quantization tools log advice at WARNING for every call; keep the CLI clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        action()
    finally:
        root.setLevel(level)


def load_crops(paths: Sequence[str], cfg: PretrainedCfg) -> np.ndarray:
    """``(N, 3, H, W)`` float32 model input for ``paths`` with the model's test-time preprocessing
    (``cfg``); an unreadable crop raises."""
    import torch

    from reid_stra.data.datasets import Sample
    from reid_stra.data.loading import ImageDataset
    from reid_stra.data.transforms import build_eval_transform

    transform = build_eval_transform(tuple(cfg.input_size), cfg.mean, cfg.std)
    images = ImageDataset([Sample(path, -1, -1) for path in paths], transform)
    return torch.stack([images[index][0] for index in range(len(images))]).numpy()


@dataclass(frozen=True)
class Int8Export:
    """The written int8 file, its sidecar and the parity report."""

    path: Path
    metadata_path: Path
    sha256: str
    size_bytes: int
    report: Int8Report


def export_int8(
    model: nn.Module,
    info: dict,
    out: str | Path,
    crops: Sequence[str],
    *,
    calibration_size: int = 256,
    seed: int = 0,
    fp32_layers: int | None = None,
    normalize: bool = True,
    notice: Callable[[str], None] = lambda _message: None,
) -> Int8Export:
    """Export ``model`` (as ``load_model`` returned it, with ``info``) to ONNX, quantize it to int8
    calibrated on ``crops`` (the user's own; held-out ones measure the parity) and write ``out``
    plus a sidecar whose ``reid_stra.int8`` block holds the report."""
    calibration_paths, held_out_paths = split_crops(crops, calibration_size, seed)
    notice(f"int8: {len(calibration_paths)} calibration crops, {len(held_out_paths)} held out (seed {seed})")
    calibration = load_crops(calibration_paths, info["cfg"])
    held_out = load_crops(held_out_paths, info["cfg"])
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="reid-stra-export-") as scratch:
        fp32 = export_model(model, info, Path(scratch) / "fp32.onnx", normalize=normalize, opset=OPSET)
        report = quantize_int8(
            fp32.path, out, calibration, held_out, fp32_layers=fp32_layers, seed=seed, notice=notice
        )
        meta = json.loads(fp32.metadata_path.read_text(encoding="utf-8"))
    data = out.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    ours = meta[OUR_KEY]
    ours.update(artifact_sha256=sha256, precision="int8", int8=report.as_dict())
    atomic_write_json(metadata_path(out), meta)
    return Int8Export(out, metadata_path(out), sha256, len(data), report)


def record_in_metadata(path: str | Path, key: str, value: object) -> None:
    """Add ``value`` under ``reid_stra.int8.<key>`` of an int8 export's sidecar (e.g. the mAP of
    fp32 and int8 on a labelled split, measured after the export)."""
    sidecar_path = metadata_path(path)
    meta = json.loads(sidecar_path.read_text(encoding="utf-8"))
    meta[OUR_KEY].setdefault("int8", {})[key] = value
    atomic_write_json(sidecar_path, meta)
