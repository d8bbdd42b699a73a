"""Reusable network layers: StRA (Local + Mode Attention) and the attention baselines."""

from reid_stra.models.layers.aggregate import local_aggregate
from reid_stra.models.layers.ibn import InstanceBatchNorm2d
from reid_stra.models.layers.local_attention import LocalAttention
from reid_stra.models.layers.lowpass import InputLowPass
from reid_stra.models.layers.mixstyle import MixStyle
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.nonlocal_block import NonLocalBlock
from reid_stra.models.layers.pooling import GeneralizedMeanPool2d
from reid_stra.models.layers.sasa import SASA, SASAWithModeAttention
from reid_stra.models.layers.se import SqueezeExcitation
from reid_stra.models.layers.stra import ConvWithModeAttention, ResidualStRA, StRA

__all__ = [
    "ConvWithModeAttention",
    "GeneralizedMeanPool2d",
    "InputLowPass",
    "InstanceBatchNorm2d",
    "LocalAttention",
    "MixStyle",
    "ModeAttention",
    "NonLocalBlock",
    "ResidualStRA",
    "SASA",
    "SASAWithModeAttention",
    "SqueezeExcitation",
    "StRA",
    "local_aggregate",
]
