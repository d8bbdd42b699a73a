"""Input low-pass: keep a network from relying on image detail its training images never had.

Re-ID training sets are often smaller than the network's input (Market-1501's crops are 64x128
and are trained at 256x128), so the network only ever sees up-sampled, smooth images. A sharper
camera then looks like another domain. Averaging the input down to the training images' native
resolution and back removes the detail the network never learned to read; on images that are no
sharper than the training set's it changes almost nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InputLowPass(nn.Module):
    """Box-filter down-sampling by ``factor`` (average pooling), then bilinear up-sampling back to
    the input size: ONNX-exportable, no parameters; ``factor=1`` is the identity."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"input_lowpass={factor!r}: must be a whole factor >= 1")
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        small = F.avg_pool2d(x, self.factor, ceil_mode=True)
        return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
