"""Input low-pass: keep a network from relying on image detail its training images never had.

Re-ID training sets are often smaller than the network's input (Market-1501's crops are 64x128
and are trained at 256x128), so the network only ever sees up-sampled, smooth images. A sharper
camera then looks like another domain. Re-sampling the input down to the training crops' native
resolution and back removes the detail the network never learned to read; images that are no
sharper than the training set's pass almost unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def triangle_taps(factor: int) -> torch.Tensor:
    """The 1-D weights of an anti-aliased bilinear (triangle) down-sampling by ``factor``: Pillow's
    ``resize(..., BILINEAR)`` filter, the one that made the training crops; ``[1, 3, 3, 1] / 8`` at 2."""
    offsets = (torch.arange(2 * factor, dtype=torch.float64) + 0.5 - factor) / factor
    taps = (1 - offsets.abs()).clamp(min=0)
    return (taps / taps.sum()).float()


class InputLowPass(nn.Module):
    """Anti-aliased down-sampling by ``factor`` (a fixed depthwise triangle filter, stride
    ``factor``, edges replicated), then bilinear up-sampling back to the input size: what resizing
    a crop to ``1/factor`` of the input and back with Pillow does, inside the graph (so ONNX and
    tracker exports keep it). No parameters; ``factor=1`` is the identity."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"input_lowpass={factor!r}: must be a whole factor >= 1")
        self.factor = factor
        taps = triangle_taps(factor)
        self.register_buffer(
            "kernel", (taps[:, None] * taps[None, :]).expand(3, 1, -1, -1).clone(), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        k = self.factor
        padded = F.pad(x, (k // 2, k - k // 2, k // 2, k - k // 2), mode="replicate")
        small = F.conv2d(padded, self.kernel.to(x.dtype), stride=k, groups=x.shape[1])
        return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
