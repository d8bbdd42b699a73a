"""Building models by name and loading ready-to-use models from weight files."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.models.cfg import DEFAULT_INPUT_SIZE, PretrainedCfg
from reid_stra.models.registry import get_entry
from reid_stra.models.shipped import WEIGHTS_DIR_ENV, default_model_name, searched_locations, shipped_weights
from reid_stra.models.weights import (
    extract_state_dict,
    is_our_checkpoint,
    load_pretrained,
    load_state_checked,
    read_checkpoint,
)
from reid_stra.utils.device import resolve_device


def build_model(
    name: str,
    num_classes: int = 0,
    pretrained: str | os.PathLike | None = None,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model; ``pretrained`` is None, ``"imagenet"`` or a local weights file.

    ``model.pretrained_cfg`` describes it (:class:`PretrainedCfg`; ``input_size`` is the size it
    will be trained or fed at). With ``pretrained``, the
    :class:`~reid_stra.models.weights.LoadReport` of what was loaded is kept as
    ``model.pretrained_report`` (commands print its summary).
    """
    entry = get_entry(name)
    _check_kwargs(name, entry.factory, kwargs)
    model = entry.factory(num_classes=num_classes, **kwargs)
    model.pretrained_cfg = PretrainedCfg(
        name=name,
        input_size=tuple(input_size),
        embedding_dim=model.embedding_dim,
        kwargs={"num_classes": num_classes, **_factory_defaults(entry.factory), **kwargs},
    )
    model.pretrained_report = None
    if pretrained is not None and str(pretrained) != "":
        path = imagenet_weights(model, name) if str(pretrained).lower() == "imagenet" else Path(pretrained)
        model.pretrained_report = load_pretrained(model, path)
    return model


def _factory_defaults(factory) -> dict[str, Any]:
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.name != "num_classes" and p.default is not inspect.Parameter.empty
    }


def _check_kwargs(name: str, factory, kwargs: dict[str, Any]) -> None:
    accepted = [p for p in inspect.signature(factory).parameters if p != "num_classes"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ReidError(f"model {name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(accepted)}")


def imagenet_weights(model: nn.Module, name: str) -> Path:
    """torchvision's ImageNet weights for this backbone, from torch's cache or downloaded into it."""
    url = getattr(model, "imagenet_url", None)
    if not url:
        raise ReidError(
            f"pretrained=imagenet: torchvision publishes no ImageNet weights for {name}'s backbone; "
            "pass pretrained=/path/to/weights.pth (--pretrained FILE) or None"
        )
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        download_url(url, target)
    except Exception as exc:  # noqa: BLE001 - any network/disk failure gets the same advice
        raise ReidError(
            f"pretrained=imagenet: cannot download {url} ({' '.join(str(exc).split())[:120]}); "
            f"offline, download it elsewhere and pass pretrained=/path/to/{target.name} (--pretrained FILE)"
        ) from None
    return target


def download_url(url: str, target: Path) -> None:
    """Download with torch's helper (temp file, then rename; checks torchvision's hash prefix)."""
    hash_prefix = target.name.rsplit("-", 1)[-1].split(".")[0] if "-" in target.name else None
    torch.hub.download_url_to_file(url, str(target), hash_prefix=hash_prefix, progress=False)


def load_model(
    model: str | None = None, weights: str | os.PathLike | None = None, device: str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """A PyTorch model ready for inference: built, weights loaded, on ``device``, in eval mode
    (:func:`reid_stra.deploy.backend.load_inference_model` also runs ONNX exports).

    Our checkpoints name their model (and its options); other formats need ``model``. Without
    ``weights`` the repository's shipped weights for ``model`` (or the default model) are used.
    The info dict: ``model``, ``weights``, ``weights_sha256``, ``cfg`` (the model's
    :class:`PretrainedCfg`: how to feed it), ``backend`` and ``load_report``.
    """
    if weights is None:
        name = model or default_model_name()
        get_entry(name)  # an unknown name fails with the closest valid one suggested
        weights = shipped_weights(name)
        if weights is None:
            raise ReidError(
                f"no shipped weights for model {name}: looked for {name}*.pth in {searched_locations()} "
                f"(${WEIGHTS_DIR_ENV} sets the folder); pass --weights FILE (a `reid-stra train` checkpoint)"
            )
    path = Path(weights)
    if path.suffix.lower() == ".onnx":  # the inference layer above models and deploy runs those
        raise ReidError(
            f"{path}: an ONNX export, not a PyTorch checkpoint; this needs the .pth it was exported "
            "from (ONNX files run in extract, search, evaluate and Embedder)"
        )
    checkpoint = read_checkpoint(path)
    if is_our_checkpoint(checkpoint):
        saved_name = checkpoint["model"]
        if model is not None and model != saved_name:
            raise ReidError(
                f"{path}: holds a {saved_name} model, not {model}; drop --model or pass --model {saved_name}"
            )
        # Inference needs no classifier (a training checkpoint's is skipped and reported).
        kwargs = {**(checkpoint.get("model_kwargs") or {}), "num_classes": 0}
        saved_cfg = checkpoint.get("default_cfg") or {}
        name = saved_name
    else:
        if model is None:
            raise ReidError(
                f"{path}: does not say which model it holds; pass --model NAME (see `reid-stra models`)"
            )
        # Foreign formats (torchreid, plain state dicts): built for inference, classifier dropped.
        name, kwargs, saved_cfg = model, {}, {}
    net = build_model(name, **kwargs)
    report = load_state_checked(net, extract_state_dict(checkpoint, path), path)
    # How the weights were trained to be fed; name, options and width come from the built model.
    fed = {key: saved_cfg[key] for key in ("input_size", "mean", "std") if key in saved_cfg}
    net.pretrained_cfg = net.pretrained_cfg.replace(**fed)
    net.to(resolve_device(device)).eval()
    info = {
        "model": name,
        "weights": str(path),
        "weights_sha256": _sha256(path),
        "cfg": net.pretrained_cfg,
        "backend": "pytorch",
        "load_report": report,
    }
    return net, info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
