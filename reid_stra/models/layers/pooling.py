"""Global pooling for the re-ID head: average (torchreid's) or generalized mean (GeM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLINGS = ("avg", "gem")


class GeneralizedMeanPool2d(nn.Module):
    """GeM (Radenović et al. 2018): ``mean(x^p)^(1/p)`` with a learned ``p`` (3 at the start).

    ``p = 1`` is average pooling and ``p -> inf`` max pooling; a learned ``p`` between them weights
    the strongest responses (a bag, a logo) more than the average does, as fast-reid's default
    head. Output (B, C, 1, 1) like ``nn.AdaptiveAvgPool2d(1)``.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return F.adaptive_avg_pool2d(x.float().clamp(min=self.eps).pow(p), 1).pow(1.0 / p).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.3f}"


def global_pool(kind: str) -> nn.Module:
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "gem":
        return GeneralizedMeanPool2d()
    raise ValueError(f"pooling={kind!r}: choose one of {', '.join(POOLINGS)}")
