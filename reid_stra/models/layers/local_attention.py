"""Local Attention (docs/METHOD.md §2): a data-dependent K x K kernel per mode and position.

Attribute names (``mask_conv``, ``value_conv``) and the layer order inside ``mask_conv`` follow
the authors' release, so their checkpoint loads without renaming.
"""

from __future__ import annotations

import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.models.layers.aggregate import gather_neighbours, local_aggregate
from reid_stra.models.layers.pointwise import PointwiseConv

# torch.fx (BatchNorm folding for inference, see reid_stra.retrieval.extract) records the
# aggregation as one call instead of tracing into its autograd Function.
torch.fx.wrap("local_aggregate")


def mask_channels(channels: int, reduction: int, modes: int) -> int:
    """Width of the mask branch: channels / reduction, rounded down to a multiple of ``modes``.

    The branch is grouped by mode, so its width must split evenly; for the paper's 512 channels
    this is exactly 512 / 4 = 128.
    """
    return max(modes, (channels // reduction) // modes * modes)


class LocalAttention(nn.Module):
    """Replace a K x K convolution by per-mode, per-position attention over the K x K window.

    ``value_groups`` defaults to ``modes`` (the paper); MobileNetV2 uses one group per channel so
    that the module costs about what the depthwise convolution it replaces costs.
    ``value_projection=False`` aggregates the input itself (no ``value_conv``), for a module placed
    right after a convolution that already serves as the value projection.
    """

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
    ) -> None:
        super().__init__()
        if modes < 1 or in_channels % modes or out_channels % modes:
            raise ReidError(
                f"modes={modes}: must divide the {in_channels}->{out_channels} channels "
                "of Local Attention; use e.g. 8"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ReidError(f"kernel_size={kernel_size}: must be odd (e.g. 3) so the window is centred")
        if reduction < 1:
            raise ReidError(f"reduction={reduction}: must be >= 1 (the paper uses 4)")
        self.modes = modes
        self.kernel_size = kernel_size
        self.dilation = dilation
        hidden = mask_channels(in_channels, reduction, modes)
        taps = kernel_size * kernel_size
        self.mask_conv = nn.Sequential(
            PointwiseConv(in_channels, hidden, groups=modes),
            nn.BatchNorm2d(hidden),
            nn.Tanh(),
            PointwiseConv(hidden, modes * (1 + taps), groups=modes),
            nn.BatchNorm2d(modes * (1 + taps)),
        )
        groups = modes if value_groups is None else value_groups
        if value_projection:
            self.value_conv: nn.Module = PointwiseConv(in_channels, out_channels, groups=groups, bias=False)
        elif in_channels != out_channels:
            raise ReidError(
                "value_projection=False: needs in_channels == out_channels, "
                f"got {in_channels}->{out_channels}"
            )
        else:
            self.value_conv = nn.Identity()

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax-normalized kernel (B, G, K², H, W): own logit ω plus the neighbour's ν."""
        logits = self.mask_conv(x)
        batch, _, height, width = logits.shape
        g, taps = self.modes, self.kernel_size * self.kernel_size
        # Split by channel index (not by conv group): [0, G) is ν, [G, G + G·K²) is ω.
        neighbour_logit = gather_neighbours(logits[:, :g], self.kernel_size, self.dilation)
        own_logit = logits[:, g:].reshape(batch, g, taps, height, width)
        return torch.softmax(own_logit + neighbour_logit, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()  # once, not in each 1x1 conv (inputs may be channels-last)
        weights = self.attention(x)
        return local_aggregate(weights, self.value_conv(x), self.kernel_size, self.dilation)
