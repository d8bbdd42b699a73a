"""Reading and writing model weights: our checkpoints, torchreid's, plain and legacy state dicts.

Every file is read with ``torch.load(..., weights_only=True)``: tensors and plain containers only,
so a file carrying pickled code is refused instead of executed. Two ways to load:

- :func:`load_weights` (trained weights, ``--weights``): the file must be this architecture. Keys
  map one to one (``module.`` prefixes stripped); a classifier of another size is skipped and
  reported (it belongs to the training set's identities); anything else that does not fit is an
  error, never a silently half-loaded model.
- :func:`load_pretrained` (initialization, ``pretrained=``): loads every tensor whose name and
  shape fit (ImageNet backbones into re-ID models; new StRA layers keep their init) and reports
  what was and was not loaded.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_torch_save

FORMAT = "reid-stra"
FORMAT_VERSION = 1
# The trainer's last.pth / prev.pth / best.pth: the same model fields plus the training state.
TRAINING_FORMAT = "reid-stra-train"
CLASSIFIER_PREFIXES = ("classifier.",)
IMAGENET_CLASSIFIER_PREFIXES = ("fc.", "classifier.")
HEAD_PREFIXES = ("global_avg_pool.", "bnneck.")


@dataclass
class LoadReport:
    """What a load did, tensor by tensor (names in the model's naming)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model tensors the file did not provide
    unexpected: list[str] = field(default_factory=list)  # file tensors the model has no place for
    skipped: dict[str, str] = field(default_factory=dict)  # file tensor -> why it was not loaded

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.path}"]
        if self.missing:
            parts.append(f"{len(self.missing)} model tensors kept their init ({_examples(self.missing)})")
        if self.skipped:
            parts.append(
                f"skipped {len(self.skipped)} ({_examples(list(self.skipped))}: {_first(self.skipped)})"
            )
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} file tensors unused ({_examples(self.unexpected)})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "loaded": list(self.loaded),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "skipped": dict(self.skipped),
        }


def _examples(names: list[str], limit: int = 2) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def _first(reasons: dict[str, str]) -> str:
    return next(iter(reasons.values()))


# ---------------------------------------------------------------------------------------------
# reading


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a file safely (tensors and containers only) and return the raw object, a dict."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ReidError(f"{path}: {what}; pass the path of a .pth/.pt weights file")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of raw-pickle files before refusing them;
            # our one-line error below says what matters.
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise ReidError(
                f"{path}: refused: the file holds pickled Python objects (code), not only tensors; "
                "load it only if you trust it and re-save its state_dict with torch.save"
            ) from None
        raise ReidError(f"{path}: not a PyTorch weights file ({_one_line(exc)}); check the path") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        raise ReidError(
            f"{path}: unreadable PyTorch file, probably truncated or corrupt ({_one_line(exc)}); "
            "copy or download it again"
        ) from None
    if not isinstance(obj, dict):
        raise ReidError(f"{path}: holds a {type(obj).__name__}, not a state dict or checkpoint dict")
    return obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def extract_state_dict(obj: dict[str, Any], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of our format, a training or torchreid checkpoint, or a plain state dict.

    ``module.`` prefixes (DataParallel/DDP) are removed.
    """
    state = obj
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            state = obj[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise ReidError(
            f"{path}: contains no tensors (empty or not a weights file); pass a trained checkpoint"
        )
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    return extract_state_dict(read_checkpoint(path), path)


# Old torchvision MobileNetV2 names: features.N.conv.{0,1,3,4,6,7} (blocks with expansion) or
# {0,1,3,4} (block 1) flattened Conv/BN/ReLU lists; today's nest the Conv-BN-ReLU6 pairs.
_LEGACY_MOBILENET = re.compile(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$")
_LEGACY_WITH_EXPANSION = {"0": "0.0", "1": "0.1", "3": "1.0", "4": "1.1", "6": "2", "7": "3"}
_LEGACY_NO_EXPANSION = {"0": "0.0", "1": "0.1", "3": "1", "4": "2"}


def convert_legacy_mobilenet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename legacy-layout MobileNetV2 keys to torchvision's current layout (others unchanged)."""
    layer_indices: dict[str, set[str]] = {}
    for key in state:
        match = _LEGACY_MOBILENET.match(key)
        if match:
            layer_indices.setdefault(match.group(1), set()).add(match.group(2))
    if not any("6" in indices or "4" in indices for indices in layer_indices.values()):
        return state  # already the current layout (its conv indices stop at 3)
    converted = {}
    for key, value in state.items():
        match = _LEGACY_MOBILENET.match(key)
        if match:
            block, index, rest = match.groups()
            table = _LEGACY_WITH_EXPANSION if "6" in layer_indices[block] else _LEGACY_NO_EXPANSION
            if index in table:
                key = f"features.{block}.conv.{table[index]}.{rest}"
        converted[key] = value
    return converted


# ---------------------------------------------------------------------------------------------
# loading into a model


def _is_classifier(key: str, prefixes: tuple[str, ...]) -> bool:
    return key.startswith(prefixes)


def load_weights(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load trained weights for exactly this architecture (see the module docstring)."""
    return load_state_checked(model, read_state_dict(path), path)


def load_state_checked(
    model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike
) -> LoadReport:
    """:func:`load_weights` on tensors already read from ``path`` (named in errors)."""
    target = model.state_dict()
    report = LoadReport(str(path))
    mismatched = []
    for key, value in state.items():
        if key not in target:
            if _is_classifier(key, CLASSIFIER_PREFIXES):
                report.skipped[key] = "the model has no classifier (re-ID classifiers are dataset-specific)"
            else:
                report.unexpected.append(key)
        elif target[key].shape != value.shape:
            if _is_classifier(key, CLASSIFIER_PREFIXES):
                shapes = f"{tuple(value.shape)} vs the model's {tuple(target[key].shape)}"
                report.skipped[key] = f"classifier of another size ({shapes})"
            else:
                mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}")
        else:
            report.loaded.append(key)
    report.missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    # A classifier the file lacks just keeps its init (it is re-learned per dataset).
    architecture_missing = [k for k in report.missing if not _is_classifier(k, CLASSIFIER_PREFIXES)]
    name = _model_name(model)
    if not report.loaded:
        raise ReidError(
            f"{path}: none of its {len(state)} tensors fit model {name} (e.g. {_examples(list(state))}); "
            "these weights are for another architecture: pass the matching --model"
        )
    if mismatched:
        raise ReidError(
            f"{path}: {len(mismatched)} tensors have other shapes than model {name} "
            f"({'; '.join(mismatched[:2])}); "
            "these weights are for another architecture or configuration: pass the matching --model"
        )
    if architecture_missing or report.unexpected:
        if architecture_missing:
            examples = _examples(architecture_missing)
            problem = f"lacks {len(architecture_missing)} tensors of model {name} ({examples})"
        else:
            problem = (
                f"has {len(report.unexpected)} tensors model {name} lacks ({_examples(report.unexpected)})"
            )
        backbone_only = any(k.startswith(HEAD_PREFIXES) for k in architecture_missing)
        hint = " (backbone-only weights initialize a model with --pretrained)" if backbone_only else ""
        raise ReidError(
            f"{path}: {problem}; these weights are for another architecture: pass the matching --model{hint}"
        )
    _copy_into(target, state, report.loaded)
    return report


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Initialize from every tensor of ``path`` that fits by name and shape; report the rest.

    The ImageNet classifier (``fc.*`` / ``classifier.*``) is never loaded; legacy MobileNetV2
    names are converted first. Fails only when nothing at all fits.
    """
    state = convert_legacy_mobilenet(read_state_dict(path))
    target = model.state_dict()
    report = LoadReport(str(path))
    for key, value in state.items():
        if _is_classifier(key, IMAGENET_CLASSIFIER_PREFIXES):
            report.skipped[key] = "classification layer of the pretraining task"
        elif key not in target:
            report.unexpected.append(key)
        elif target[key].shape != value.shape:
            report.skipped[key] = f"shape {tuple(value.shape)} vs the model's {tuple(target[key].shape)}"
        else:
            report.loaded.append(key)
    loaded = set(report.loaded)
    report.missing = [k for k in target if k not in loaded]
    if not report.loaded:
        name = _model_name(model)
        raise ReidError(
            f"{path}: none of its {len(state)} tensors fit model {name} (e.g. {_examples(list(state))}); "
            "pass weights of the same backbone family"
        )
    _copy_into(target, state, report.loaded)
    return report


def _model_name(model: nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None)
    return cfg.name if cfg is not None else type(model).__name__


def _copy_into(target: dict[str, torch.Tensor], state: dict[str, torch.Tensor], keys: list[str]) -> None:
    with torch.no_grad():
        for key in keys:
            target[key].copy_(state[key])


# ---------------------------------------------------------------------------------------------
# writing


def save_weights(model: nn.Module, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Atomically export ``model`` in our format (readable with weights_only=True)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if cfg is None:
        raise ReidError("save_weights: the model has no pretrained_cfg; build it with reid_stra.build_model")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": cfg.name,
        "model_kwargs": _plain(dict(cfg.kwargs)),
        "default_cfg": _plain(cfg.to_dict()),  # the file key older files use too
        "meta": _plain(meta or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    atomic_torch_save(path, payload)
    return Path(path)


def _plain(value: Any) -> Any:
    """Containers of str/int/float/bool/None only, so the file stays loadable with weights_only."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def is_our_checkpoint(obj: dict[str, Any]) -> bool:
    """A file that names its model: packed weights, ``model_final.pth`` or a training checkpoint."""
    return obj.get("format") in (FORMAT, TRAINING_FORMAT) and isinstance(obj.get("model"), str)
