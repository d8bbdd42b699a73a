"""Non-local block (Wang et al. 2018), embedded-Gaussian form: every position attends to all others.

The output projection's BN starts at zero so that a freshly inserted block is the identity and
does not disturb a pretrained backbone.
"""

from __future__ import annotations

import torch
from torch import nn


class NonLocalBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        inner = channels // reduction
        self.g = nn.Conv2d(channels, inner, 1)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.W = nn.Sequential(nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # B, HW, C'
        phi = self.phi(x).flatten(2)  # B, C', HW
        g = self.g(x).flatten(2).transpose(1, 2)  # B, HW, C'
        attention = torch.softmax(torch.bmm(theta, phi), dim=-1)
        y = torch.bmm(attention, g).transpose(1, 2).reshape(batch, -1, height, width)
        return x + self.W(y)
