"""The StRA block: Local Attention followed by Mode Attention (the authors' ``conv2`` with ``.moe``).

:class:`StRA` keeps the authors' attribute layout (``mask_conv``, ``value_conv``, ``moe``) so their
checkpoint loads as is. :class:`ConvWithModeAttention` puts Mode Attention after a plain (group)
convolution for the paper's ablations (SASA's variant lives in ``sasa.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from reid_stra.models.layers.local_attention import LocalAttention
from reid_stra.models.layers.mode_attention import ModeAttention


class StRA(LocalAttention):
    """Structure-Regularized Attention: a drop-in replacement for a stride-1 K x K convolution."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        modes: int = 8,
        kernel_size: int = 3,
        reduction: int = 4,
        dilation: int = 1,
        value_groups: int | None = None,
        value_projection: bool = True,
        interaction: bool = True,
        pool_border: bool = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            modes=modes,
            kernel_size=kernel_size,
            reduction=reduction,
            dilation=dilation,
            value_groups=value_groups,
            value_projection=value_projection,
        )
        self.moe = ModeAttention(out_channels, modes, interaction=interaction, pool_border=pool_border)

    def local(self, x: torch.Tensor) -> torch.Tensor:
        """The Local Attention output alone (before Mode Attention)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(self.local(x))


class ConvWithModeAttention(nn.Conv2d):
    """A K x K (group) convolution followed by Mode Attention (the paper's ablations).

    A Conv2d subclass so the convolution keeps its plain ``conv2.weight`` name and ImageNet
    weights load into it.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int = 3, groups: int = 1, modes: int = 8
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.moe = ModeAttention(out_channels, modes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(super().forward(x))


class ResidualStRA(nn.Module):
    """A StRA block added to a trained network the way non-local blocks are: ``x + BN(StRA(x))``.

    The BatchNorm's scale starts at zero, so the block's output starts as its input and the
    pretrained network is unchanged at the first step; StRA (with its own 1x1 value projection,
    grouped by mode as in the paper) then learns what to add.
    """

    def __init__(
        self, channels: int, *, modes: int = 8, reduction: int = 4, pool_border: bool = True
    ) -> None:
        super().__init__()
        self.stra = StRA(channels, channels, modes=modes, reduction=reduction, pool_border=pool_border)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.stra(x))
