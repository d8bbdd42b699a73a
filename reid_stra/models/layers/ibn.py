"""IBN-a normalization (Pan et al., IBN-Net, ECCV 2018): instance norm beside batch norm.

Instance normalization removes each image's own channel statistics (contrast, colour cast,
lighting: what changes from one camera network to the next) while batch normalization keeps the
content statistics the later layers need; IBN-a puts both in one layer, half the channels each,
in the shallow stages only. This is the ingredient IBN-Net and OSNet-AIN use to generalize to
unseen domains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceBatchNorm2d(nn.Module):
    """The first ``round(channels * in_ratio)`` channels instance-normalized, the rest batch-normalized.

    Its parameters and buffers carry ``nn.BatchNorm2d``'s names and shapes (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked`` over all channels), so a plain
    network's BatchNorm weights load into it unchanged: the instance-normalized half starts from
    the BN's affine parameters (IBN-Net's initialization), the running statistics of that half are
    kept but unused. Not a ``BatchNorm2d`` subclass on purpose, so inference-time Conv+BN folding
    leaves it alone (instance statistics cannot be folded into weights).
    """

    def __init__(
        self, channels: int, in_ratio: float = 0.5, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if not 0.0 < in_ratio < 1.0:
            raise ValueError(f"in_ratio={in_ratio}: must be between 0 and 1")
        self.num_features = channels
        self.instance_channels = max(1, min(channels - 1, round(channels * in_ratio)))
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d, in_ratio: float = 0.5) -> InstanceBatchNorm2d:
        layer = cls(bn.num_features, in_ratio, eps=bn.eps, momentum=bn.momentum if bn.momentum else 0.1)
        layer.load_state_dict(bn.state_dict())
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.instance_channels
        first, rest = x[:, :split], x[:, split:]
        first = F.instance_norm(first, weight=self.weight[:split], bias=self.bias[:split], eps=self.eps)
        if self.training:
            self.num_batches_tracked.add_(1)
        # Slices of the running buffers are views, so batch_norm updates them in place.
        rest = F.batch_norm(
            rest,
            self.running_mean[split:],
            self.running_var[split:],
            self.weight[split:],
            self.bias[split:],
            self.training,
            self.momentum,
            self.eps,
        )
        return torch.cat((first, rest), dim=1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, instance_channels={self.instance_channels}"
