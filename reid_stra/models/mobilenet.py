"""MobileNetV2 re-ID models, with and without StRA.

Choices (the paper does not state them: docs/METHOD.md §4):

- Backbone: torchvision's ``mobilenet_v2`` ``features`` (width 1.0 or 1.4), so torchvision and the
  legacy-layout ImageNet weights load by name.
- Last stride 1: the stride-2 depthwise conv of block 14 becomes stride 1, as layer4 of the
  ResNets, giving a 16x8 final map at 256x128. With it our FLOPs at 256x128 are 350M (width 1.0)
  and 680M (1.4); the paper lists 370M and 680M, so the paper used last stride 1 too.
- Embedding: the globally pooled last feature map (1280-d; 1792-d at width 1.4, torchvision's
  last channel), with no fc layer (``neck="none"``), as torchreid's MobileNetV2 (the
  model of the README's torchreid comparison rows); ``neck="fc"``/``"bnneck"`` are available.
- Where StRA goes: after the depthwise 3x3 conv of every inverted-residual block at the final
  resolution (blocks 14-17: the 160- and 320-channel stages), the analogue of StRA in all of
  ResNet's layer4. The depthwise conv stays (with its ImageNet weights) and serves as StRA's
  value projection; StRA then aggregates it over the 3x3 window per mode and adds Mode Attention.
  StRA starts near the identity (see :class:`DepthwiseThenStRA`), so training starts from the
  ImageNet network. Costs at 256x128: +4.9% FLOPs (width 1.0) and +4.5% (1.4), inside the 5%
  budget (the paper: +0% and +6%).
- Why not replace the depthwise conv, as StRA replaces ResNet's 3x3 conv (``stra_placement=
  "replace"``, kept for comparison)? Blocks 14 and 17 have no skip connection, so a randomly
  initialized StRA there cuts the ImageNet signal path, and a Local Attention kernel shared by the
  120 channels of a mode is a poorer spatial filter than 960 per-channel ones; on Market-1501-mini
  it trained far worse than placing StRA after the depthwise conv (the README's results).
- ``stra_placement="tail"`` (issue 16's placement study): no StRA inside the blocks; one residual
  StRA block (:class:`~reid_stra.models.layers.ResidualStRA`, output starting at zero) between
  the last inverted residual (320 channels) and the final 1x1 conv, the way non-local blocks are
  added to pretrained networks.
- ``stra_pool_border=False`` (issue 16's counter-measure, not the paper's module): Mode Attention
  pools only from cells off the feature map's outer ring, where trained modes were found locked
  onto corners and background; the modes then lock onto interior cells instead (README).
- Domain generalization (issue 25), each off by default: ``ibn=True`` makes the BatchNorm after
  the expansion 1x1 conv of blocks 2-13 an IBN-a layer (half instance norm), every stage before the
  last stride as IBN-Net does in ResNet's layer1-3; ``mixstyle=True`` mixes feature statistics
  between training images after blocks 3 and 6 (the ends of the 24- and 32-channel stages, the
  analogue of MixStyle's res1/res2); ``pooling="gem"`` pools with a learned generalized mean;
  ``input_lowpass=k`` filters the input down by ``k`` and back first
  (:class:`~reid_stra.models.layers.InputLowPass`: the training crops' native resolution).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from reid_stra.errors import ReidError
from reid_stra.models.heads import ReidNet
from reid_stra.models.layers import InputLowPass, InstanceBatchNorm2d, MixStyle, ResidualStRA, StRA
from reid_stra.models.registry import register_model

LAST_STRIDE_BLOCK = 14  # first block of the 160-channel stage: the last down-sampling
# StRA after the depthwise conv, instead of it, or one residual block after the last stage
STRA_PLACEMENTS = ("after", "replace", "tail")
IBN_BLOCKS = tuple(range(2, LAST_STRIDE_BLOCK))  # blocks with an expansion conv before the last stride
MIXSTYLE_AFTER = (3, 6)  # the last blocks of the 24- and 32-channel stages


def _depthwise(block: nn.Module) -> nn.Conv2d:
    """The 3x3 depthwise conv of an inverted residual (``conv[-3]`` is its Conv-BN-ReLU6)."""
    return block.conv[-3][0]


class DepthwiseThenStRA(nn.Conv2d):
    """The block's pretrained depthwise 3x3 conv followed by StRA, started near the identity.

    A Conv2d subclass so the depthwise kernel keeps its torchvision name and ImageNet weights load
    into it; StRA lives under ``.stra``. At initialization StRA passes its input almost unchanged
    (the centre tap's logit raised by ``CENTRE_LOGIT``, Mode Attention's gates biased to
    sigmoid(``GATE_BIAS``) ~ 0.05), so training starts from the ImageNet network rather than from a
    randomly re-wired one (pooled features on real crops: cosine 0.93 to the plain network's,
    against 0.75 with unbiased gates).
    """

    CENTRE_LOGIT = 4.0
    GATE_BIAS = -3.0

    def __init__(self, depthwise: nn.Conv2d, *, modes: int, reduction: int, pool_border: bool = True) -> None:
        channels = depthwise.out_channels
        super().__init__(
            channels,
            channels,
            depthwise.kernel_size,
            stride=depthwise.stride,
            padding=depthwise.padding,
            groups=depthwise.groups,
            bias=False,
        )
        self.weight = depthwise.weight
        # The depthwise conv is StRA's value projection: a 1x1 per-channel one after it would only
        # rescale what the depthwise kernel can already scale (and cost 0.1% more FLOPs).
        self.stra = StRA(
            channels,
            channels,
            modes=modes,
            reduction=reduction,
            value_projection=False,
            pool_border=pool_border,
        )
        with torch.no_grad():
            taps = self.stra.kernel_size**2
            centre = modes + torch.arange(modes) * taps + taps // 2
            self.stra.mask_conv[-1].bias[centre] = self.CENTRE_LOGIT
            for gate_norm in (self.stra.moe.bn, self.stra.moe.bn2):
                if gate_norm is not None:
                    gate_norm.bias.fill_(self.GATE_BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stra(super().forward(x))


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
        stra_placement: str = "after",
        stra_pool_border: bool = True,
        ibn: bool = False,
        mixstyle: bool = False,
        pooling: str = "avg",
        input_lowpass: int = 1,
    ) -> None:
        super().__init__()
        if stra_placement not in STRA_PLACEMENTS:
            raise ReidError(f"stra_placement={stra_placement!r}: choose one of {', '.join(STRA_PLACEMENTS)}")
        if last_stride not in (1, 2):
            raise ReidError(f"last_stride={last_stride}: must be 1 or 2")
        try:
            self.input_lowpass = InputLowPass(input_lowpass) if input_lowpass != 1 else None
        except ValueError as exc:
            raise ReidError(str(exc)) from None
        self.features = mobilenet_v2(width_mult=width_mult).features
        if width_mult == 1.0:
            self.imagenet_url = MobileNet_V2_Weights.IMAGENET1K_V1.url
        if last_stride == 1:
            _depthwise(self.features[LAST_STRIDE_BLOCK]).stride = (1, 1)
        if ibn:
            for index in IBN_BLOCKS:
                expand = self.features[index].conv[0]
                expand[1] = InstanceBatchNorm2d.from_batch_norm(expand[1])
        self.mixstyle = nn.ModuleDict({str(i): MixStyle() for i in MIXSTYLE_AFTER}) if mixstyle else None
        if stra_placement == "tail" and stra_blocks:
            raise ReidError(
                "stra_placement='tail' adds one block after the last stage: leave stra_blocks unset"
            )
        self.stra_tail = (
            ResidualStRA(
                self.features[-2].out_channels, modes=modes, reduction=reduction, pool_border=stra_pool_border
            )
            if stra_placement == "tail"
            else None
        )
        for index in stra_blocks:
            if not 1 <= index < len(self.features) - 1:
                raise ReidError(
                    f"stra_blocks: {index} is not an inverted-residual block (1..{len(self.features) - 2})"
                )
            block = self.features[index]
            depthwise = _depthwise(block)
            channels = depthwise.in_channels
            if stra_placement == "after":
                block.conv[-3][0] = DepthwiseThenStRA(
                    depthwise, modes=modes, reduction=reduction, pool_border=stra_pool_border
                )
            elif depthwise.stride != (1, 1):
                raise ReidError(f"stra_blocks: block {index} down-samples; StRA replaces stride-1 convs only")
            else:
                block.conv[-3][0] = StRA(
                    channels,
                    channels,
                    modes=modes,
                    reduction=reduction,
                    value_groups=channels,
                    pool_border=stra_pool_border,
                )
        self.init_head(self.features[-1][0].out_channels, num_classes, neck, embedding_dim, pooling)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_lowpass is not None:
            x = self.input_lowpass(x)
        if self.mixstyle is not None and self.training:
            for index, block in enumerate(self.features):
                if index == len(self.features) - 1 and self.stra_tail is not None:
                    x = self.stra_tail(x)
                x = block(x)
                if str(index) in self.mixstyle:
                    x = self.mixstyle[str(index)](x)
            return x
        if self.stra_tail is None:
            return self.features(x)
        return self.features[-1](self.stra_tail(self.features[:-1](x)))

    def last_stage_names(self) -> tuple[str, ...]:
        """Every block at the final resolution (``features.14`` on, where StRA sits)."""
        blocks = tuple(f"features.{i}" for i in range(LAST_STRIDE_BLOCK, len(self.features)))
        return blocks if self.stra_tail is None else (*blocks, "stra_tail")


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


def _plain(
    width_mult: float,
    num_classes: int = 0,
    neck: str = "none",
    embedding_dim: int = 512,
    last_stride: int = 1,
    ibn: bool = False,
    mixstyle: bool = False,
    pooling: str = "avg",
    input_lowpass: int = 1,
) -> ReidMobileNetV2:
    """A variant's options are this signature's (build_model records them with the weights)."""
    return ReidMobileNetV2(
        width_mult=width_mult,
        num_classes=num_classes,
        neck=neck,
        embedding_dim=embedding_dim,
        last_stride=last_stride,
        ibn=ibn,
        mixstyle=mixstyle,
        pooling=pooling,
        input_lowpass=input_lowpass,
    )


def _with_stra(
    width_mult: float,
    num_classes: int = 0,
    neck: str = "none",
    embedding_dim: int = 512,
    last_stride: int = 1,
    stra_blocks: tuple[int, ...] | None = None,
    modes: int = 8,
    reduction: int = 4,
    stra_placement: str = "after",
    stra_pool_border: bool = True,
    ibn: bool = False,
    mixstyle: bool = False,
    pooling: str = "avg",
    input_lowpass: int = 1,
) -> ReidMobileNetV2:
    """``stra_blocks=None``: every block at the final resolution (:func:`default_stra_blocks`), or
    none for ``stra_placement="tail"``."""
    if stra_blocks is None:
        stra_blocks = () if stra_placement == "tail" else default_stra_blocks(last_stride)
    return ReidMobileNetV2(
        width_mult=width_mult,
        num_classes=num_classes,
        neck=neck,
        embedding_dim=embedding_dim,
        last_stride=last_stride,
        stra_blocks=tuple(stra_blocks),
        modes=modes,
        reduction=reduction,
        stra_placement=stra_placement,
        stra_pool_border=stra_pool_border,
        ibn=ibn,
        mixstyle=mixstyle,
        pooling=pooling,
        input_lowpass=input_lowpass,
    )


# Variant entry points (timm's pattern): a name, a width and whether StRA is in.
_STRA_WHERE = "with StRA after the depthwise convs of blocks 14-17"
mobilenetv2 = register_model(
    "mobilenetv2",
    description="MobileNetV2 1.0 (last stride 1, pooled 1280-d embedding)",
    paper={"gflops": 0.37, "mAP": 71.7, "rank1": 88.7},
)(partial(_plain, 1.0))
mobilenetv2_x1_4 = register_model(
    "mobilenetv2_x1_4",
    description="MobileNetV2 1.4 (last stride 1, pooled 1792-d embedding)",
    paper={"gflops": 0.68, "mAP": 72.5, "rank1": 89.0},
)(partial(_plain, 1.4))
stra_mobilenetv2 = register_model(
    "stra_mobilenetv2",
    description=f"MobileNetV2 1.0 {_STRA_WHERE}",
    paper={"gflops": 0.37, "mAP": 74.2, "rank1": 89.3},
)(partial(_with_stra, 1.0))
stra_mobilenetv2_x1_4 = register_model(
    "stra_mobilenetv2_x1_4",
    description=f"MobileNetV2 1.4 {_STRA_WHERE}",
    paper={"gflops": 0.72, "mAP": 74.6, "rank1": 89.9},
)(partial(_with_stra, 1.4))
