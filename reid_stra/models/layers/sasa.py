"""Stand-alone self-attention (SASA, Ramachandran et al. 2019) over a K x K window: a baseline.

Queries, keys and values are 1x1 convolutions grouped by head (as StRA's value branch, which
gives the paper's 17.8M parameters); each head attends over its K x K neighbourhood with
logits ``q_i . (k_j + r_{j-i})``, half of each head's channels embedding the row offset and half
the column offset. Out-of-image keys and values are zero (zero padding), as in StRA.
Logits are scaled by 1/sqrt(C/G) as in standard dot-product attention (the SASA paper leaves
them unscaled, which with 64-channel heads saturates the softmax and makes it ill-conditioned).
"""

from __future__ import annotations

import torch
from torch import nn

from reid_stra.models.layers.aggregate import local_aggregate, window_offsets
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.pointwise import PointwiseConv

# torch.fx (BatchNorm folding for inference, see reid_stra.retrieval.extract) records the
# aggregation as one call instead of tracing into its autograd Function.
torch.fx.wrap("local_aggregate")


class SASA(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, heads: int = 8, kernel_size: int = 3) -> None:
        super().__init__()
        if out_channels % (2 * heads) or in_channels % heads:
            raise ValueError(
                f"channels {in_channels}->{out_channels} must split into {heads} heads of even size"
            )
        self.heads = heads
        self.kernel_size = kernel_size
        self.query_conv = PointwiseConv(in_channels, out_channels, groups=heads, bias=False)
        self.key_conv = PointwiseConv(in_channels, out_channels, groups=heads, bias=False)
        self.value_conv = PointwiseConv(in_channels, out_channels, groups=heads, bias=False)
        half = out_channels // heads // 2
        self.rel_h = nn.Parameter(torch.randn(heads, half, kernel_size) * half**-0.5)
        self.rel_w = nn.Parameter(torch.randn(heads, half, kernel_size) * half**-0.5)

    def relative_embedding(self) -> torch.Tensor:
        """(G, n, K²): per head, row embedding in the first n/2 channels, column in the rest."""
        k = self.kernel_size
        rows = self.rel_h.unsqueeze(-1).expand(-1, -1, k, k)
        cols = self.rel_w.unsqueeze(-2).expand(-1, -1, k, k)
        return torch.cat([rows, cols], dim=1).flatten(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()  # once, not in each 1x1 conv (inputs may be channels-last)
        q, key, value = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        batch, channels, height, width = q.shape
        g, k = self.heads, self.kernel_size
        q = q.view(batch, g, channels // g, height, width)
        pad = k // 2
        padded_key = nn.functional.pad(key, (pad, pad, pad, pad)).view(
            batch, g, channels // g, height + 2 * pad, -1
        )
        content = [
            (q * padded_key[..., r : r + height, c : c + width]).sum(dim=2) for r, c in window_offsets(k)
        ]
        logits = torch.stack(content, dim=2) + torch.einsum("bgnhw,gnk->bgkhw", q, self.relative_embedding())
        return local_aggregate(torch.softmax(logits * (channels // g) ** -0.5, dim=2), value, k)


class SASAWithModeAttention(SASA):
    """SASA followed by Mode Attention (an ablation of the paper)."""

    def __init__(self, in_channels: int, out_channels: int, *, heads: int = 8, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels, heads=heads, kernel_size=kernel_size)
        self.moe = ModeAttention(out_channels, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(super().forward(x))
