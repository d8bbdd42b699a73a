"""ResNet-50 re-ID models: the paper's baseline, StRA-ResNet50, its ablations and attention baselines.

All share torchvision's ResNet-50 layout and names (so ImageNet weights load), layer4 with stride
1 ("last stride 1", the standard re-ID choice that doubles the final map to 16x8 at 256x128) and
the paper's head (pool -> 1x1 conv 2048->512 -> BN). Variants differ only in what replaces the
3x3 ``conv2`` of layer4's three bottlenecks, or in a block type (SE, non-local). Paper numbers:
the paper's Market-1501 table (mAP / rank-1 in per cent; docs/METHOD.md §5).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet50_Weights

from reid_stra.errors import ReidError
from reid_stra.models.heads import ReidNet
from reid_stra.models.layers import (
    SASA,
    ConvWithModeAttention,
    InstanceBatchNorm2d,
    LocalAttention,
    NonLocalBlock,
    SASAWithModeAttention,
    SqueezeExcitation,
    StRA,
)
from reid_stra.models.registry import register_model

LAYERS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)


class SEBottleneck(Bottleneck):
    """Bottleneck with Squeeze-and-Excitation on the residual branch (SE-ResNet, Hu et al.)."""

    def __init__(self, inplanes: int, planes: int, *args, **kwargs) -> None:
        super().__init__(inplanes, planes, *args, **kwargs)
        self.se = SqueezeExcitation(planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class NonLocalBottleneck(Bottleneck):
    """Bottleneck followed by a non-local block on its output (Wang et al.'s placement)."""

    def __init__(self, inplanes: int, planes: int, *args, **kwargs) -> None:
        super().__init__(inplanes, planes, *args, **kwargs)
        self.nonlocal_block = NonLocalBlock(planes * self.expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlocal_block(super().forward(x))


BlockFactory = Callable[[int], type[Bottleneck]]
Conv2Factory = Callable[[int], nn.Module]


class ReidResNet(ReidNet):
    """torchvision ResNet-50 trunk + re-ID head, with optional replacements in layer4."""

    imagenet_url = ResNet50_Weights.IMAGENET1K_V1.url

    def __init__(
        self,
        *,
        num_classes: int = 0,
        neck: str = "fc",
        embedding_dim: int = 512,
        last_stride: int = 1,
        block_for_layer: BlockFactory = lambda layer: Bottleneck,
        layer4_conv2: Conv2Factory | None = None,
        ibn: bool = False,
    ) -> None:
        """``ibn=True``: IBN-a (IBN-Net), the first BatchNorm of every bottleneck of layer1-3 made
        half instance norm (:class:`~reid_stra.models.layers.InstanceBatchNorm2d`), for cameras
        the model was not trained on; the same tensor names, so plain ResNet weights load."""
        super().__init__()
        if last_stride not in (1, 2):
            raise ReidError(f"last_stride={last_stride}: must be 1 or 2")
        if layer4_conv2 is not None and last_stride != 1:
            raise ReidError("last_stride=2: attention in layer4 needs last_stride=1 (the paper's setting)")
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (blocks, width) in enumerate(zip(LAYERS, WIDTHS, strict=True)):
            stride = 1 if index == 0 else (last_stride if index == 3 else 2)
            layer, inplanes = _make_layer(block_for_layer(index + 1), inplanes, width, blocks, stride)
            setattr(self, f"layer{index + 1}", layer)
        _init_trunk(self)
        if ibn:
            for layer in (self.layer1, self.layer2, self.layer3):
                for block in layer:
                    block.bn1 = InstanceBatchNorm2d.from_batch_norm(block.bn1)
        if layer4_conv2 is not None:
            for block in self.layer4:
                block.conv2 = layer4_conv2(WIDTHS[3])
        self.init_head(inplanes, num_classes, neck, embedding_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _make_layer(
    block: type[Bottleneck], inplanes: int, planes: int, blocks: int, stride: int
) -> tuple[nn.Sequential, int]:
    outplanes = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != outplanes:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False), nn.BatchNorm2d(outplanes)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(outplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), outplanes


def _init_trunk(model: nn.Module) -> None:
    """torchvision's ResNet init; runs before attention layers are inserted, which keep their own."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in model.modules():
        if isinstance(module, NonLocalBlock):  # identity at start (see nonlocal_block.py)
            nn.init.zeros_(module.W[1].weight)


def _head_kwargs(num_classes: int, neck: str, embedding_dim: int) -> dict:
    return {"num_classes": num_classes, "neck": neck, "embedding_dim": embedding_dim}


@register_model(
    "resnet50",
    description="ResNet-50 baseline: last stride 1, 512-d 1x1-conv+BN embedding (torchreid resnet50_fc512)",
    paper={"params_m": 24.56, "gflops": 4.05, "mAP": 77.1, "rank1": 90.6},
)
def resnet50(
    num_classes: int = 0, neck: str = "fc", embedding_dim: int = 512, last_stride: int = 1, ibn: bool = False
) -> ReidResNet:
    return ReidResNet(**_head_kwargs(num_classes, neck, embedding_dim), last_stride=last_stride, ibn=ibn)


@register_model(
    "stra_resnet50",
    description="ResNet50_StRA (the paper's model): Local + Mode Attention replace layer4's 3x3 convs",
    paper={"params_m": 17.62, "gflops": 3.17, "mAP": 84.1, "rank1": 93.8},
)
def stra_resnet50(
    num_classes: int = 0,
    neck: str = "fc",
    embedding_dim: int = 512,
    modes: int = 8,
    kernel_size: int = 3,
    reduction: int = 4,
    ibn: bool = False,
) -> ReidResNet:
    return ReidResNet(
        **_head_kwargs(num_classes, neck, embedding_dim),
        layer4_conv2=lambda c: StRA(c, c, modes=modes, kernel_size=kernel_size, reduction=reduction),
        ibn=ibn,
    )


def _layer4_modes(
    conv2: Callable[[int, int], nn.Module],
    num_classes: int = 0,
    neck: str = "fc",
    embedding_dim: int = 512,
    modes: int = 8,
) -> ReidResNet:
    """An ablation: ``conv2(channels, modes)`` replaces each of layer4's 3x3 convs."""
    return ReidResNet(
        **_head_kwargs(num_classes, neck, embedding_dim), layer4_conv2=lambda c: conv2(c, modes)
    )


def _layer4_heads(
    conv2: Callable[[int, int], nn.Module],
    num_classes: int = 0,
    neck: str = "fc",
    embedding_dim: int = 512,
    heads: int = 8,
) -> ReidResNet:
    """A SASA ablation: ``conv2(channels, heads)`` replaces each of layer4's 3x3 convs."""
    return ReidResNet(
        **_head_kwargs(num_classes, neck, embedding_dim), layer4_conv2=lambda c: conv2(c, heads)
    )


# The ablations of the paper's Table 2 as variant entry points (a name, a layer, the paper's row).
local_resnet50 = register_model(
    "local_resnet50",
    description="Ablation: Local Attention only in layer4 (no Mode Attention)",
    paper={"mAP": 79.9, "rank1": 92.3},
)(partial(_layer4_modes, lambda c, modes: LocalAttention(c, c, modes=modes)))
stra_resnet50_nointer = register_model(
    "stra_resnet50_nointer",
    description="Ablation: Local + Mode Attention without mode interaction (stops after phase 1)",
    paper={"mAP": 83.3, "rank1": 93.4},
)(partial(_layer4_modes, lambda c, modes: StRA(c, c, modes=modes, interaction=False)))
conv_mode_resnet50 = register_model(
    "conv_mode_resnet50",
    description="Ablation: Mode Attention after layer4's 3x3 convs",
    paper={"params_m": 24.6, "gflops": 4.06, "mAP": 82.1, "rank1": 93.2},
)(partial(_layer4_modes, lambda c, modes: ConvWithModeAttention(c, c, modes=modes)))
gconv_mode_resnet50 = register_model(
    "gconv_mode_resnet50",
    description="Ablation: Mode Attention after 3x3 group convs (8 groups) in layer4",
    paper={"params_m": 18.4, "gflops": 3.26, "mAP": 82.8, "rank1": 93.3},
)(partial(_layer4_modes, lambda c, modes: ConvWithModeAttention(c, c, groups=8, modes=modes)))
sasa_mode_resnet50 = register_model(
    "sasa_mode_resnet50",
    description="Ablation: Mode Attention after SASA (local self-attention) in layer4",
    paper={"params_m": 17.8, "gflops": 3.19, "mAP": 83.0, "rank1": 93.6},
)(partial(_layer4_heads, lambda c, heads: SASAWithModeAttention(c, c, heads=heads)))
sasa_resnet50 = register_model(
    "sasa_resnet50",
    description="Baseline: SASA (stand-alone local self-attention, 3x3 window) replaces layer4's 3x3 convs",
    paper={"params_m": 17.8, "gflops": 3.19, "mAP": 79.5, "rank1": 92.3},
)(partial(_layer4_heads, lambda c, heads: SASA(c, c, heads=heads)))


@register_model(
    "se_resnet50",
    description=(
        "Baseline: SE-ResNet50 (squeeze-and-excitation in every bottleneck), last stride 1; "
        "SE adds ~0.01 GFLOPs, the paper's 4.49 is not reproduced"
    ),
    paper={"gflops": 4.49, "mAP": 80.7, "rank1": 93.3},
)
def se_resnet50(num_classes: int = 0, neck: str = "fc", embedding_dim: int = 512) -> ReidResNet:
    return ReidResNet(
        **_head_kwargs(num_classes, neck, embedding_dim), block_for_layer=lambda layer: SEBottleneck
    )


@register_model(
    "nonlocal_resnet50",
    description="Baseline: a non-local block after each of layer4's bottlenecks",
    paper={"gflops": 7.28, "mAP": 80.2, "rank1": 91.9},
)
def nonlocal_resnet50(num_classes: int = 0, neck: str = "fc", embedding_dim: int = 512) -> ReidResNet:
    return ReidResNet(
        **_head_kwargs(num_classes, neck, embedding_dim),
        block_for_layer=lambda layer: NonLocalBottleneck if layer == 4 else Bottleneck,
    )
