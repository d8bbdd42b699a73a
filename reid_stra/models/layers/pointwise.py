"""Grouped 1x1 convolution computed as one batched matrix product.

StRA is built from grouped 1x1 convs (8 groups). On CPU, PyTorch runs a grouped conv as one
small GEMM per group (or a oneDNN call with poor blocking for 64-channel groups); a single
broadcast ``matmul`` over (groups x out x in) weights is 2-3x faster and gives the same result.
It stays an ``nn.Conv2d`` (same parameters, state-dict names, init and complexity hooks), so
checkpoints and FLOP counting are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseConv(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, *, groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = self.groups
        if groups == 1:
            return F.conv2d(x, self.weight, self.bias)
        batch, _, height, width = x.shape
        if groups == self.in_channels == self.out_channels:  # depthwise: a per-channel scale
            out = x * self.weight.view(1, -1, 1, 1)
        else:
            weight = self.weight.view(groups, self.out_channels // groups, self.in_channels // groups)
            grouped = x.reshape(batch, groups, self.in_channels // groups, height * width)
            out = torch.matmul(weight, grouped).view(batch, self.out_channels, height, width)
        if self.bias is not None:
            out = out.add_(self.bias.view(1, -1, 1, 1))
        return out
