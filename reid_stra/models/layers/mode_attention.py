"""Mode Attention (docs/METHOD.md §3): pool each mode into a modal vector, re-weight, let modes interact.

The module keeps no state between forwards: it hands its pooling weights P to the record the
caller opened (:func:`~reid_stra.models.layers.mode_record.record_mode_pooling`), from which the
training loss computes the diversity term and ``explain`` draws the maps.
Names (``gap_weight``, ``bn``, ``bn2``) follow the authors' release.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.models.layers.mode_record import hand_over
from reid_stra.models.layers.pointwise import PointwiseConv


class ModeAttention(nn.Module):
    def __init__(
        self, channels: int, modes: int = 8, *, interaction: bool = True, pool_border: bool = True
    ) -> None:
        """``pool_border=False`` (not the paper's module, which pools everywhere): modes pool only
        from cells off the map's outer ring, to test whether modes locked onto corners do so
        because zero padding makes corners easy to find (README, "What StRA needs")."""
        super().__init__()
        if modes < 1 or channels % modes:
            raise ReidError(
                f"modes={modes}: must divide the {channels} channels of Mode Attention; use e.g. 8"
            )
        self.modes = modes
        self.interaction = interaction
        self.pool_border = pool_border
        self.gap_weight = nn.Sequential(
            PointwiseConv(channels, 8 * modes, groups=modes),
            nn.BatchNorm2d(8 * modes),
            nn.Tanh(),
            PointwiseConv(8 * modes, modes, groups=modes),
            nn.BatchNorm2d(modes),
        )
        self.bn = nn.BatchNorm2d(modes)
        self.bn2 = nn.BatchNorm2d(modes) if interaction else None

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = s.shape
        g, positions = self.modes, height * width
        logits = self.gap_weight(s)
        if not self.pool_border and height > 2 and width > 2:
            border = torch.ones(height, width, dtype=torch.bool, device=s.device)
            border[1:-1, 1:-1] = False
            logits = logits.masked_fill(border, float("-inf"))
        pooling = torch.softmax(logits.reshape(batch, g, positions), dim=-1)
        hand_over(self, pooling.view(batch, g, height, width))
        features = s.reshape(batch, g, channels // g, positions)
        modal = torch.matmul(features, pooling.unsqueeze(-1)).squeeze(-1)  # z: (B, G, n)
        if self.interaction:
            affinity = F.normalize(torch.matmul(modal, modal.transpose(1, 2)), dim=-1)
            mixed = torch.matmul(torch.softmax(affinity * math.sqrt(g), dim=-1), modal)  # z'
            queries = torch.stack([modal, mixed], dim=2)
        else:
            queries = modal.unsqueeze(2)
        # Both phases from one pass over s: phase 2's <y_i, z'> = <s_i, z'> + r_i <z, z'>,
        # since y = s + r z. Then y_out = s + r z + r' z' is one batched multiply-add.
        dots = torch.matmul(queries, features)  # (B, G, phases, HW)
        gate = self._gate(dots[:, :, 0], self.bn, (batch, g, height, width))
        gates = [gate]
        if self.interaction:
            cross = (modal * mixed).sum(dim=-1, keepdim=True)
            gates.append(
                self._gate(torch.addcmul(dots[:, :, 1], gate, cross), self.bn2, (batch, g, height, width))
            )
        phases = queries.shape[2]
        y = torch.baddbmm(
            features.reshape(batch * g, -1, positions),
            queries.transpose(2, 3).reshape(batch * g, -1, phases),
            torch.stack(gates, dim=2).reshape(batch * g, phases, positions),
        )
        return y.view(batch, channels, height, width)

    @staticmethod
    def _gate(dots: torch.Tensor, bn: nn.BatchNorm2d, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """sigmoid(bn(<s_i, z>)) per mode and position, as (B, G, HW)."""
        return torch.sigmoid(bn(dots.reshape(shape))).flatten(2)
