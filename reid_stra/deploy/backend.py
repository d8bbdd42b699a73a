"""Which engine runs the model (``--backend auto|pytorch|onnxruntime``) and the export cache behind it.

On a CPU, ONNX Runtime runs our exported graph faster than PyTorch runs the model (BENCHMARKS.md,
"Fast on a CPU"), so ``auto`` uses it there whenever it is installed and the precision is fp32;
on CUDA, and for bf16/fp16, PyTorch. A user never exports by hand: the graph for a weights file
is exported once into a cache folder keyed by the weights' checksum, the input size and the opset,
and reused by every later command. The features are those of the same weights (the sidecar records
the source weights' checksum), so PyTorch and ONNX Runtime feature files mix.

The cache folder is ``$REID_STRA_CACHE_DIR/onnx`` when that variable is set, else
``$XDG_CACHE_HOME/reid-stra/onnx`` (``~/.cache/reid-stra/onnx``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from reid_stra.errors import ReidError, unknown_name_error

BACKENDS = ("auto", "pytorch", "onnxruntime")
CACHE_DIR_ENV = "REID_STRA_CACHE_DIR"
#: bumped when the cached graphs' contents change meaning (old entries are then ignored)
CACHE_FORMAT = 1
_ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")  # run, and export the graph to run


@dataclass(frozen=True)
class Backend:
    name: str  # pytorch or onnxruntime
    reason: str  # why, in words (printed once by the CLI)

    def describe(self) -> str:
        return f"backend {self.name}: {self.reason}"


def onnxruntime_available() -> bool:
    return all(importlib.util.find_spec(package) is not None for package in _ONNX_PACKAGES)


def resolve_backend(requested: str, device: str = "cpu", precision: str = "fp32") -> Backend:
    """``requested`` (auto, pytorch, onnxruntime) for ``device`` and the resolved ``precision``."""
    from reid_stra.deploy.export import EXPORT_EXTRA

    name = str(requested).strip().lower()
    if name not in BACKENDS:
        raise unknown_name_error("backend", requested, list(BACKENDS))
    if name == "pytorch":
        return Backend("pytorch", "asked for")
    if name == "onnxruntime":
        if not onnxruntime_available():
            raise ReidError(
                f"backend onnxruntime: onnxruntime, onnx and onnxscript are needed; {EXPORT_EXTRA}"
            )
        return Backend("onnxruntime", "asked for")
    if not str(device).startswith("cpu"):
        return Backend("pytorch", f"auto: PyTorch on {device}")
    if precision != "fp32":
        return Backend("pytorch", f"auto: {precision} runs in PyTorch")
    if not onnxruntime_available():
        return Backend("pytorch", f"auto: onnxruntime is not installed ({EXPORT_EXTRA} for faster CPU runs)")
    return Backend("onnxruntime", "auto: ONNX Runtime on the CPU (the weights' export, cached)")


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reid-stra" / "onnx"


def cached_export(model: nn.Module, info: dict[str, Any], folder: Path | None = None) -> Path:
    """The ONNX export of ``model`` (as ``load_model`` returned it with ``info``) from the cache,
    exported on first use. Keyed by the weights' checksum, input size and opset, so changed weights
    get a new entry. Safe with several processes: each writes whole files under temporary names and
    renames them (the same bytes either way); the metadata file, written last, marks an entry done."""
    from reid_stra.deploy.export import OPSET, export_model, metadata_path

    sha = info.get("weights_sha256")
    if not sha:
        raise ReidError(f"backend onnxruntime: {info.get('weights')}: no checksum to key the export cache by")
    height, width = (int(v) for v in info["cfg"].input_size)
    key = hashlib.sha256(f"{CACHE_FORMAT}:{sha}:{height}x{width}:{OPSET}".encode()).hexdigest()[:20]
    path = (folder or cache_dir()) / f"{info['model']}-{height}x{width}-{key}.onnx"
    if path.is_file() and metadata_path(path).is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReidError(
            f"backend onnxruntime: cannot create the export cache {path.parent} ({exc})"
        ) from None
    # Raw embeddings (no normalization in the graph): the caller normalizes as it does for PyTorch.
    export_model(model, info, path, normalize=False)
    return path


def with_backend(
    model: nn.Module,
    info: dict[str, Any],
    backend: Backend,
    device: str = "cpu",
    input_size: tuple[int, int] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """``model`` run by ``backend``: itself for PyTorch (or an .onnx file already), else an ONNX
    Runtime session on the cached export (at ``input_size``, default the model's own). ``info``
    keeps the source weights (path and checksum), so feature files and the gallery checks see the
    same weights whichever engine ran them; the export's own file is ``info["export"]``."""
    if backend.name != "onnxruntime" or info.get("backend") == "onnxruntime":
        return model, info
    from reid_stra.deploy.onnx_backend import load_onnx_model

    if input_size is not None:
        info = {**info, "cfg": info["cfg"].replace(input_size=tuple(int(v) for v in input_size))}
    exported = cached_export(model, info)
    session, session_info = load_onnx_model(exported, device)
    merged = {
        **session_info,
        "weights": info["weights"],
        "weights_sha256": info["weights_sha256"],
        "source_weights_sha256": info["weights_sha256"],
        "export": str(exported),
        "export_sha256": session_info["weights_sha256"],
        "load_report": info.get("load_report"),  # how the weights loaded into the exported model
    }
    return session, merged


def load_inference_model(
    model: str | None = None,
    weights: str | os.PathLike | None = None,
    *,
    device: str = "cpu",
    backend: str = "auto",
    precision: str = "fp32",
    input_size: tuple[int, int] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Any model file ready for inference, with the engine to run it: a PyTorch checkpoint
    (``load_model``) or an ONNX export (run by ONNX Runtime as exported). ``info["backend"]`` is
    what runs it and ``info["backend_reason"]`` why; ``info["precision"]`` is the arithmetic it runs
    in (``precision``, except an ONNX graph, which runs as exported: fp32). Under ``auto`` a model
    that does not export runs in PyTorch (said in the reason); an explicit ``onnxruntime`` fails
    instead."""
    from reid_stra.models.build import load_model
    from reid_stra.utils.device import resolve_device

    device = str(resolve_device(device))
    chosen = resolve_backend(backend, device, precision)
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        from reid_stra.deploy.onnx_backend import load_onnx_model  # lazy: onnxruntime is optional

        net, info = load_onnx_model(weights, device)
        if model is not None and model != info["model"]:
            raise ReidError(f"{weights}: holds a {info['model']} model, not {model}; drop --model")
        reason = "backend onnxruntime: the weights are an ONNX export"
        return net, {**info, "backend_reason": reason, "precision": "fp32"}
    net, info = load_model(model, weights, device=device)
    try:
        net, info = with_backend(net, info, chosen, device, input_size)
    except ReidError as exc:
        if str(backend).strip().lower() != "auto":
            raise
        net.to(device)  # the export ran on the CPU copy
        chosen = Backend("pytorch", f"auto: the model did not export ({exc})")
    runs_in = "fp32" if info.get("backend") == "onnxruntime" else precision  # the graph as exported
    return net, {**info, "backend_reason": chosen.describe(), "precision": runs_in}
