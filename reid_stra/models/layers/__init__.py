"""Reusable network layers: StRA (Local + Mode Attention) and the attention baselines."""

from reid_stra.models.layers.aggregate import local_aggregate
from reid_stra.models.layers.local_attention import LocalAttention
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.nonlocal_block import NonLocalBlock
from reid_stra.models.layers.sasa import SASA, SASAWithModeAttention
from reid_stra.models.layers.se import SqueezeExcitation
from reid_stra.models.layers.stra import ConvWithModeAttention, ResidualStRA, StRA

__all__ = [
    "ConvWithModeAttention",
    "LocalAttention",
    "ModeAttention",
    "NonLocalBlock",
    "ResidualStRA",
    "SASA",
    "SASAWithModeAttention",
    "SqueezeExcitation",
    "StRA",
    "local_aggregate",
]
