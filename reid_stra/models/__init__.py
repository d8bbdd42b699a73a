"""Model zoo: StRA layers, ResNet-50 and MobileNetV2 families, weights and complexity.

Importing this package registers every model family with the registry.
"""

from reid_stra.models import mobilenet, resnet  # noqa: F401  (registers the models)
from reid_stra.models.build import build_model, imagenet_weights, load_model
from reid_stra.models.cfg import PretrainedCfg
from reid_stra.models.complexity import Complexity, count_flops, count_params, measure_complexity
from reid_stra.models.introspect import capture_mode_maps, mode_blocks
from reid_stra.models.registry import get_entry, list_models, register_model
from reid_stra.models.shipped import default_model_name, shipped_weights
from reid_stra.models.weights import LoadReport, load_pretrained, load_weights, save_weights

__all__ = [
    "Complexity",
    "LoadReport",
    "PretrainedCfg",
    "build_model",
    "capture_mode_maps",
    "count_flops",
    "count_params",
    "default_model_name",
    "get_entry",
    "imagenet_weights",
    "list_models",
    "load_model",
    "load_pretrained",
    "load_weights",
    "measure_complexity",
    "mode_blocks",
    "register_model",
    "save_weights",
    "shipped_weights",
]
