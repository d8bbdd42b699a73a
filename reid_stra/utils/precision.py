"""``--precision auto|fp32|bf16|fp16``: which arithmetic a command runs the model in, and why.

bf16 autocast runs convolutions and matrix products on a CPU's bf16 units (AMX tiles, or
AVX512-BF16 dot products) and fp16 autocast on CUDA's tensor cores; everything else (losses,
BatchNorm statistics, the optimizer, features written to disk) stays float32. ``auto`` picks
only what was measured both faster and faithful (BENCHMARKS.md, "Precision"): on CUDA the usual
fp16 mixed precision; for training on a CPU with bf16 units (AMX or AVX512-BF16), bf16, which
trained to the fp32 runs' accuracy within their seed spread; everywhere else fp32 -- bf16
inference moves the features of these small models enough to cost evaluation accuracy while
gaining little at re-ID crop sizes. ``--precision bf16`` is always the explicit choice where the
CPU has bf16 units.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from reid_stra.errors import ReidError, unknown_name_error

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The chosen arithmetic (``fp32``, ``bf16`` or ``fp16``) and a one-line reason for it."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.name]

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast for this precision on ``device`` (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def describe(self) -> str:
        return f"precision {self.name}: {self.reason}"


def _cpuinfo_field(key: str) -> str | None:
    """The first ``key`` line of ``/proc/cpuinfo`` (None where there is none, e.g. not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_flags() -> set[str]:
    """The CPU's feature flags (an empty set where /proc/cpuinfo has none)."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_model_name() -> str:
    """The CPU's model name, for benchmark reports (BENCHMARKS.md names the CPU of every number)."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_bf16_units() -> str | None:
    """``"AMX"`` or ``"AVX512-BF16"`` when oneDNN can run bf16 on this CPU's matrix/dot units.

    torch 2.14 has no query for AMX itself: ``_init_amx`` asks the kernel for the AMX tile
    state (what oneDNN needs before it uses the tiles) and says whether it was granted.
    """
    flags = _cpu_flags()
    if not flags:  # no /proc/cpuinfo (not Linux): oneDNN's own answer, which cannot tell AMX apart
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return "AVX512-BF16" if supported is not None and supported() else None
    init_amx = getattr(torch._C._cpu, "_init_amx", None)
    if "amx_bf16" in flags and init_amx is not None and init_amx():
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else None


def resolve_precision(requested: str, device: torch.device, *, training: bool = False) -> Precision:
    """Turn ``--precision`` into a :class:`Precision` for ``device``; impossible asks fail in one line."""
    if requested not in PRECISIONS:
        raise unknown_name_error("precision", requested, PRECISIONS)
    cuda = device.type == "cuda"
    units = None if cuda else cpu_bf16_units()
    if requested == "fp32":
        return Precision("fp32", "asked for (--precision fp32)")
    if requested == "fp16":
        if not cuda:
            raise ReidError("--precision fp16: needs a CUDA device; on a CPU use --precision bf16 or fp32")
        return Precision("fp16", "asked for (--precision fp16)")
    if requested == "bf16":
        if cuda:
            if not torch.cuda.is_bf16_supported():
                raise ReidError(
                    "--precision bf16: this GPU has no bf16 support; use --precision fp16 or auto"
                )
            return Precision("bf16", "asked for (--precision bf16)")
        if units is None:
            raise ReidError(
                "--precision bf16: this CPU has no bf16 units (AMX or AVX512-BF16), so bf16 would be "
                "emulated and slower; use --precision fp32 (or auto)"
            )
        return Precision("bf16", f"asked for (--precision bf16; this CPU has {units})")
    if cuda:
        return Precision("fp16", "auto: CUDA mixed precision (fp16 autocast)")
    if units is not None and training:
        return Precision(
            "bf16",
            f"auto: this CPU has {units} bf16 units (training measured faster in bf16 on such CPUs: "
            "BENCHMARKS.md, Precision)",
        )
    if units is not None:
        return Precision(
            "fp32",
            f"auto: bf16 inference on {units} moves the shipped MobileNetV2 models' features (cosine "
            "to fp32 < 0.999) for little end-to-end speed; --precision bf16 forces it (ResNet-50s gain most)",
        )
    return Precision("fp32", "auto: this CPU has no bf16 units (AMX or AVX512-BF16)")
