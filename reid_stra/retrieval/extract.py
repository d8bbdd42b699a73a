"""Feature extraction: images -> (N, D) float32 embeddings, fast on CPU and CUDA.

Speed comes from three things, each measured in ``benchmarks/bench_extract.py``: worker
processes decode and resize images while the model runs (a DataLoader), the model runs in
``inference_mode`` with BatchNorm folded into the preceding convolutions (torch.fx) and
channels-last memory layout (oneDNN / cuDNN kernels are much faster in it), and batches go to
the GPU from pinned memory. An unreadable image never crashes a worker: the dataset returns a
placeholder plus the error, and the caller decides whether to skip it or stop.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.utils.data import DataLoader, Dataset

from reid_stra.data.datasets import Sample
from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from reid_stra.data.loading import ImageDataset
from reid_stra.data.transforms import normalize_batch, resize_to_uint8
from reid_stra.errors import ReidError
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.retrieval.features import FeatureMeta
from reid_stra.utils.device import resolve_device
from reid_stra.utils.precision import Precision
from reid_stra.utils.progress import task_progress

_SHOW = 3  # unreadable images listed in an error before "(+N more)"


@dataclass
class Extraction:
    """Features of the readable images (in input order) and what could not be read."""

    features: np.ndarray  # (len(kept), D) float32
    kept: np.ndarray  # indices into the input paths, one per feature row
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass(frozen=True)
class Preprocess:
    """How pixels become model input; recorded in the feature sidecar."""

    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    flip: bool = False  # average the features of the image and its mirror
    normalize: bool = False  # L2-normalize each feature row
    precision: str = "fp32"  # the model's arithmetic (a resolved --precision: fp32, bf16 or fp16)

    @classmethod
    def for_model(
        cls,
        cfg: PretrainedCfg,
        *,
        input_size: Sequence[int] | None = None,
        flip: bool = False,
        normalize: bool = False,
        precision: str = "fp32",
    ) -> Preprocess:
        """The model's own input size, mean and std (``input_size`` overrides the size)."""
        size = tuple(int(v) for v in (input_size or cfg.input_size))
        return cls(size, cfg.mean, cfg.std, flip, normalize, precision)  # type: ignore[arg-type]

    @classmethod
    def from_meta(cls, meta: FeatureMeta, precision: str = "fp32") -> Preprocess:
        """What a feature file's images went through, so queries are embedded the same way."""
        size = tuple(int(v) for v in meta.input_size)
        return cls(size, tuple(meta.mean), tuple(meta.std), meta.flip, meta.normalized, precision)  # type: ignore[arg-type]


class _ImageFiles(Dataset):
    """Decoded, resized images as uint8 (a quarter of float32's bytes between processes; the
    batch is normalized once, on the model's device); a bad file yields zeros plus its error
    instead of raising. Decoding is the data layer's :class:`ImageDataset`."""

    def __init__(self, paths: Sequence[str], preprocess: Preprocess) -> None:
        size = preprocess.input_size
        self.images = ImageDataset(
            [Sample(path, -1, -1) for path in paths], partial(resize_to_uint8, size=size)
        )
        self.shape = (3, *size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            return self.images[index][0], ""
        except ReidError as exc:
            return torch.zeros(self.shape, dtype=torch.uint8), str(exc)


def extract_features(
    model: nn.Module,
    paths: Sequence[str],
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: str | torch.device = "cpu",
    input_size: Sequence[int] = DEFAULT_INPUT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip: bool = False,
    normalize: bool = False,
    skip_bad: bool = False,
    progress: bool = True,
    optimize: bool = True,
    precision: str = "fp32",
) -> np.ndarray:
    """Embed every image of ``paths``: an ``(N, D)`` float32 array in the order of ``paths``.

    Unreadable images raise one :class:`ReidError` listing them; with ``skip_bad`` their rows
    are left out instead (use :func:`extract` to learn which rows were kept).
    """
    preprocess = Preprocess(
        checked_input_size(input_size), tuple(mean), tuple(std), flip, normalize, precision
    )
    result = extract(
        model,
        paths,
        preprocess,
        batch_size=batch_size,
        workers=workers,
        device=device,
        skip_bad=skip_bad,
        progress=progress,
        optimize=optimize,
    )
    return result.features


def extract(
    model: nn.Module,
    paths: Sequence[str],
    preprocess: Preprocess,
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: str | torch.device = "cpu",
    skip_bad: bool = False,
    progress: bool = True,
    optimize: bool = True,
) -> Extraction:
    """Like :func:`extract_features` but also says which rows were kept and which images failed."""
    paths = list(paths)
    if not paths:
        raise ReidError("no images to extract features from; check the inputs")
    batches = [list(range(i, min(i + batch_size, len(paths)))) for i in range(0, len(paths), batch_size)]
    features: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    failures: list[tuple[str, str]] = []
    for batch in iterate_batches(
        model,
        paths,
        batches,
        preprocess,
        workers=workers,
        device=device,
        skip_bad=skip_bad,
        progress=progress,
        optimize=optimize,
    ):
        features.append(batch.features)
        kept.append(batch.kept)
        failures.extend(batch.failures)
    return combine(features, kept, failures, len(paths))


def combine(
    features: Sequence[np.ndarray], kept: Sequence[np.ndarray], failures: list[tuple[str, str]], total: int
) -> Extraction:
    """Join per-batch (or per-chunk) results; at least one image must have been readable."""
    nonempty = [f for f in features if f.shape[0] > 0]
    if not nonempty:
        first = f"; first: {failures[0][1]}" if failures else ""
        raise ReidError(f"none of the {total} images could be read{first}")
    return Extraction(np.concatenate(nonempty), np.concatenate(list(kept)), failures)


def iterate_batches(
    model: nn.Module,
    paths: Sequence[str],
    batches: Sequence[Sequence[int]],
    preprocess: Preprocess,
    *,
    workers: int = 2,
    device: str | torch.device = "cpu",
    skip_bad: bool = False,
    progress: bool = True,
    optimize: bool = True,
) -> Iterator[Extraction]:
    """Yield one :class:`Extraction` per batch of indices, in order (what resumable writers need).

    Without ``skip_bad``, the first unreadable image stops the model but decoding goes on, so
    the final :class:`ReidError` lists every bad file at once instead of one per attempt.
    """
    if isinstance(device, str):
        device = resolve_device(device)
    checked_input_size(preprocess.input_size)
    if workers < 0:
        raise ReidError(f"--workers {workers}: must be 0 (decode in this process) or more")
    if any(len(b) == 0 for b in batches):
        raise ReidError("--batch-size: must be at least 1")
    loader = DataLoader(
        _ImageFiles(paths, preprocess),
        batch_sampler=[list(b) for b in batches],
        num_workers=min(workers, len(batches)),  # more processes than batches would only idle
        pin_memory=device.type == "cuda",
    )
    failures: list[tuple[str, str]] = []
    total = sum(len(b) for b in batches)
    progress_cm = task_progress("extracting", total=total, unit="img", show=progress)
    with progress_cm as advance, inference_runner(model, device, optimize, preprocess.precision) as forward:
        for indices, (images, errors) in zip(batches, loader, strict=True):
            bad = [(paths[i], reason) for i, reason in zip(indices, errors, strict=True) if reason]
            failures.extend(bad)
            advance(len(indices))
            if failures and not skip_bad:
                continue  # keep decoding to report every bad file, but stop spending model time
            good = [pos for pos, reason in enumerate(errors) if not reason]
            images = images[good] if bad else images
            images = normalize_batch(images.to(device, non_blocking=True), preprocess.mean, preprocess.std)
            feats = embed_batch(forward, images, device, preprocess)
            yield Extraction(feats, np.asarray([indices[p] for p in good], dtype=np.int64), bad)
    if failures and not skip_bad:
        raise unreadable_error(failures)


def unreadable_error(failures: Sequence[tuple[str, str]]) -> ReidError:
    """One line naming the unreadable images (reasons already start with the path)."""
    shown = "; ".join(reason for _, reason in failures[:_SHOW])
    more = f" (+{len(failures) - _SHOW} more)" if len(failures) > _SHOW else ""
    return ReidError(
        f"{len(failures)} unreadable image(s): {shown}{more}; fix or remove them, or pass --skip-bad"
    )


@contextlib.contextmanager
def inference_runner(
    model: nn.Module, device: torch.device, optimize: bool = True, precision: str = "fp32"
) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Yield ``forward(x) -> (B, D)`` running an inference-optimized copy of ``model``.

    The caller's model is put in eval mode on ``device`` and its train/eval flag is restored
    afterwards (the trainer validates mid-training). The optimized copy folds BatchNorm into
    convolutions and uses channels-last weights; models torch.fx cannot trace run unfused.
    """
    was_training = model.training
    forward = make_forward(model, device, optimize, precision)
    try:
        with torch.inference_mode():
            yield forward
    finally:
        model.train(was_training)


def make_forward(
    model: nn.Module, device: torch.device, optimize: bool = True, precision: str = "fp32"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward(x) -> (B, D)`` float32 over an inference-optimized copy of ``model`` (put in eval
    mode on ``device``), under ``precision``'s autocast; built once and reused by
    :class:`~reid_stra.retrieval.embedder.Embedder`."""
    arithmetic = Precision(precision, "")
    model.eval().to(device)
    runner, channels_last = _optimized_copy(model) if optimize else (model, False)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(images: torch.Tensor) -> torch.Tensor:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        with arithmetic.autocast(device):
            output = runner(images)
        if isinstance(output, dict):  # a model left in train-style output
            output = output["features"]
        if output.ndim != 2:
            raise ReidError(f"the model returned {tuple(output.shape)} per batch; expected (batch, dim)")
        return output.float()

    return forward


def _optimized_copy(model: nn.Module) -> tuple[nn.Module, bool]:
    if getattr(model, "inference_ready", False):  # e.g. an ONNX Runtime session: nothing to fuse
        return model, False
    with torch.no_grad():
        try:
            runner = fuse(model)  # a copy with Conv+BN folded
        except Exception:  # noqa: BLE001 - untraceable models (data-dependent control flow) run as-is
            try:
                runner = copy.deepcopy(model)
            except Exception:  # noqa: BLE001 - uncopyable modules: run the original unchanged
                return model, False
        runner.eval()
        return runner.to(memory_format=torch.channels_last), True


def embed_batch(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    device: torch.device,
    preprocess: Preprocess,
) -> np.ndarray:
    if images.shape[0] == 0:
        return np.zeros((0, 0), dtype=np.float32)
    feats = forward(images).float()
    if preprocess.flip:
        feats = (feats + forward(images.flip(3)).float()) / 2
    if preprocess.normalize:
        feats = torch.nn.functional.normalize(feats, dim=1)
    return feats.cpu().numpy().astype(np.float32, copy=False)


def checked_input_size(size: Sequence[int]) -> tuple[int, int]:
    """``--height/--width`` as ``(h, w)``, refused when it is not two sizes of at least 8 pixels."""
    if len(size) != 2 or min(int(v) for v in size) < 8:
        raise ReidError(f"--height/--width {tuple(size)}: the input size must be two values of at least 8")
    return int(size[0]), int(size[1])
