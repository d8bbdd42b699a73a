"""MobileNetV2 re-ID models, with and without StRA.

Choices (the paper does not state them; spec §5 asks us to choose and document):

- Backbone: torchvision's ``mobilenet_v2`` ``features`` (width 1.0 or 1.4), so torchvision and the
  legacy-layout ImageNet weights load by name.
- Last stride 1: the stride-2 depthwise conv of block 14 becomes stride 1, as layer4 of the
  ResNets, giving a 16x8 final map at 256x128. With it our FLOPs at 256x128 are 350M (width 1.0)
  and 680M (1.4); the paper lists 370M and 680M, so the paper used last stride 1 too.
- Embedding: the globally pooled last feature map (1280-d; 1792-d at width 1.4, torchvision's
  last channel), with no fc layer (``neck="none"``), as torchreid's MobileNetV2 and the
  reference numbers in ``docs/REFERENCE_NUMBERS.md``; ``neck="fc"``/``"bnneck"`` are available.
- Where StRA goes: it replaces the depthwise 3x3 conv of every inverted-residual block at the
  final resolution (blocks 14-17: the 160- and 320-channel stages), the analogue of StRA in all
  of ResNet's layer4. Its value projection is depthwise (one group per channel): in an inverted
  residual the 1x1 expansion already mixes channels and the depthwise conv being replaced is
  per-channel, and a grouped (8-group) value conv over 960 channels alone would add ~15M MACs
  per block (+17% in total). With a depthwise value conv, StRA costs +3.9% (width 1.0) and +3.8%
  (1.4) FLOPs over the baseline, inside the 5% budget (the paper: +0% and +6%).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from reid_stra.errors import ReidError
from reid_stra.models.heads import ReidNet
from reid_stra.models.layers import StRA
from reid_stra.models.registry import register_model

LAST_STRIDE_BLOCK = 14  # first block of the 160-channel stage: the last down-sampling


def _depthwise(block: nn.Module) -> nn.Conv2d:
    """The 3x3 depthwise conv of an inverted residual (``conv[-3]`` is its Conv-BN-ReLU6)."""
    return block.conv[-3][0]


class ReidMobileNetV2(ReidNet):
    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        num_classes: int = 0,
        neck: str = "none",
        embedding_dim: int = 512,
        last_stride: int = 1,
        stra_blocks: tuple[int, ...] = (),
        modes: int = 8,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ReidError(f"last_stride={last_stride}: must be 1 or 2")
        self.features = mobilenet_v2(width_mult=width_mult).features
        if width_mult == 1.0:
            self.imagenet_url = MobileNet_V2_Weights.IMAGENET1K_V1.url
        if last_stride == 1:
            _depthwise(self.features[LAST_STRIDE_BLOCK]).stride = (1, 1)
        for index in stra_blocks:
            if not 1 <= index < len(self.features) - 1:
                raise ReidError(
                    f"stra_blocks: {index} is not an inverted-residual block (1..{len(self.features) - 2})"
                )
            block = self.features[index]
            depthwise = _depthwise(block)
            if depthwise.stride != (1, 1):
                raise ReidError(f"stra_blocks: block {index} down-samples; StRA replaces stride-1 convs only")
            channels = depthwise.in_channels
            block.conv[-3][0] = StRA(
                channels, channels, modes=modes, reduction=reduction, value_groups=channels
            )
        self.init_head(self.features[-1][0].out_channels, num_classes, neck, embedding_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def default_stra_blocks(last_stride: int) -> tuple[int, ...]:
    """Every block at the final resolution (see the module docstring)."""
    first = LAST_STRIDE_BLOCK if last_stride == 1 else LAST_STRIDE_BLOCK + 1
    return tuple(range(first, 18))


def _mobilenet(width_mult: float, stra: bool, **kwargs) -> ReidMobileNetV2:
    last_stride = kwargs.get("last_stride", 1)
    if stra and kwargs.get("stra_blocks") is None:
        kwargs["stra_blocks"] = default_stra_blocks(last_stride)
    kwargs["stra_blocks"] = tuple(kwargs.get("stra_blocks") or ())
    return ReidMobileNetV2(width_mult=width_mult, **kwargs)


@register_model(
    "mobilenetv2",
    description="MobileNetV2 1.0 (last stride 1, pooled 1280-d embedding)",
    paper={"gflops": 0.37, "mAP": 71.7, "rank1": 88.7},
)
def mobilenetv2(
    num_classes: int = 0, neck: str = "none", embedding_dim: int = 512, last_stride: int = 1
) -> ReidMobileNetV2:
    return _mobilenet(
        1.0, False, num_classes=num_classes, neck=neck, embedding_dim=embedding_dim, last_stride=last_stride
    )


@register_model(
    "mobilenetv2_x1_4",
    description="MobileNetV2 1.4 (last stride 1, pooled 1792-d embedding)",
    paper={"gflops": 0.68, "mAP": 72.5, "rank1": 89.0},
)
def mobilenetv2_x1_4(
    num_classes: int = 0, neck: str = "none", embedding_dim: int = 512, last_stride: int = 1
) -> ReidMobileNetV2:
    return _mobilenet(
        1.4, False, num_classes=num_classes, neck=neck, embedding_dim=embedding_dim, last_stride=last_stride
    )


@register_model(
    "stra_mobilenetv2",
    description="MobileNetV2 1.0 with StRA replacing the depthwise convs of blocks 14-17",
    paper={"gflops": 0.37, "mAP": 74.2, "rank1": 89.3},
)
def stra_mobilenetv2(
    num_classes: int = 0,
    neck: str = "none",
    embedding_dim: int = 512,
    last_stride: int = 1,
    stra_blocks: tuple[int, ...] | None = None,
    modes: int = 8,
    reduction: int = 4,
) -> ReidMobileNetV2:
    return _mobilenet(
        1.0,
        True,
        num_classes=num_classes,
        neck=neck,
        embedding_dim=embedding_dim,
        last_stride=last_stride,
        stra_blocks=stra_blocks,
        modes=modes,
        reduction=reduction,
    )


@register_model(
    "stra_mobilenetv2_x1_4",
    description="MobileNetV2 1.4 with StRA replacing the depthwise convs of blocks 14-17",
    paper={"gflops": 0.72, "mAP": 74.6, "rank1": 89.9},
)
def stra_mobilenetv2_x1_4(
    num_classes: int = 0,
    neck: str = "none",
    embedding_dim: int = 512,
    last_stride: int = 1,
    stra_blocks: tuple[int, ...] | None = None,
    modes: int = 8,
    reduction: int = 4,
) -> ReidMobileNetV2:
    return _mobilenet(
        1.4,
        True,
        num_classes=num_classes,
        neck=neck,
        embedding_dim=embedding_dim,
        last_stride=last_stride,
        stra_blocks=stra_blocks,
        modes=modes,
        reduction=reduction,
    )
