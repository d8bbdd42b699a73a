"""MixStyle (Zhou et al., ICLR 2021): mix feature statistics between images while training.

A shallow feature map's channel means and standard deviations carry an image's "style" (camera
colour, lighting, background tone). Swapping them partly between the images of a batch shows the
network styles between those of its training cameras, so it learns features that do not depend
on them: a domain-generalization regularizer with no parameters, inactive at test time.
"""

from __future__ import annotations

import torch
from torch import nn


class MixStyle(nn.Module):
    """With probability ``p`` per batch, re-style each image with a Beta(alpha, alpha) mix of its
    own statistics and those of a random other image of the batch (the paper's random mixing)."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] < 2 or float(torch.rand(())) > self.p:
            return x
        batch = x.shape[0]
        dtype = x.dtype
        x32 = x.float()
        mean = x32.mean(dim=(2, 3), keepdim=True)
        std = (x32.var(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        normed = (x32 - mean.detach()) / std.detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((batch, 1, 1, 1)).to(x.device)
        perm = torch.randperm(batch, device=x.device)
        mixed_mean = mean * lam + mean[perm] * (1 - lam)
        mixed_std = std * lam + std[perm] * (1 - lam)
        return (normed * mixed_std + mixed_mean).to(dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}"
