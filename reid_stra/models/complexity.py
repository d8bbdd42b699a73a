"""Parameters and FLOPs the way the paper counts them.

The paper (docs/METHOD.md §5) uses torchreid's ``compute_model_complexity(..., only_conv_linear=True)``:
one eval-mode forward of a single 3 x H x W image; FLOPs are multiply-accumulates of conv and
linear layers only, a conv counting ``(k_h*k_w*C_in + has_bias) * output_elements / groups`` and a
linear ``(in_features + has_bias) * output_elements``; parameters are those of the modules that
ran in that forward. So the classifier (train-only) is not counted, which is what gives
ResNet-50 (fc512) 24.56M and StRA-ResNet50 17.62M.

One deliberate difference: torchreid hooks leaf modules only, so parameters owned directly by a
composite module (SASA's relative embeddings) would be missed; we count every parameter of each
module that ran, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE


@dataclass(frozen=True)
class Complexity:
    params: int
    flops: int  # multiply-accumulates

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _conv_flops(module: nn.modules.conv._ConvNd, output: torch.Tensor) -> int:
    per_output = math.prod(module.kernel_size) * module.in_channels + (module.bias is not None)
    return int(per_output * output.numel() / module.groups)


def _linear_flops(module: nn.Linear, output: torch.Tensor) -> int:
    return int((module.in_features + (module.bias is not None)) * output.numel())


def measure_complexity(model: nn.Module, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE) -> Complexity:
    """Params and FLOPs of ``model`` on one 3 x H x W image in eval mode (train mode is restored)."""
    ran: dict[int, nn.Module] = {}
    flops = 0

    def hook(module: nn.Module, _inputs, output) -> None:
        nonlocal flops
        ran[id(module)] = module
        if isinstance(module, nn.modules.conv._ConvNd):
            flops += _conv_flops(module, output)
        elif isinstance(module, nn.Linear):
            flops += _linear_flops(module, output)

    handles = [module.register_forward_hook(hook) for module in model.modules()]
    was_training = model.training
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.rand(1, 3, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(p.numel() for m in ran.values() for p in m.parameters(recurse=False))
    return Complexity(params=params, flops=flops)


def count_params(model: nn.Module) -> int:
    """Parameters used at test time (the paper's convention: classifier excluded)."""
    return measure_complexity(model).params


def count_flops(model: nn.Module, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE) -> int:
    """Multiply-accumulates of conv and linear layers for one image of ``input_size``."""
    return measure_complexity(model, input_size).flops
