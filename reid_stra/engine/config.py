"""Training configuration: one typed dataclass, two named recipes, YAML/TOML override files.

Precedence, lowest first: the dataclass defaults, the recipe (``paper`` or ``strong``), the
``--config`` file, then command-line options. Every run saves the resolved configuration as
``config.yaml`` in its output folder; that file is itself a valid ``--config`` file, so any run
can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reid_stra.data.loading import default_workers
from reid_stra.engine.losses import LossWeights
from reid_stra.engine.optim import OPTIMIZERS, SCHEDULES
from reid_stra.errors import ReidError, suggest, unknown_name_error
from reid_stra.models.shipped import default_model_name
from reid_stra.utils.atomic import atomic_write_text
from reid_stra.utils.precision import PRECISIONS

SAMPLERS = ("random", "identity")
CROP_STYLES = ("translate", "pad")
ERASING_FILLS = ("mean", "zero")
FIXBASE_LAYERS = ("new", "classifier")

_LOSSES = LossWeights()


@dataclass
class TrainConfig:
    """Every option of a training run. Field names are the config-file keys; ``--x-y`` sets ``x_y``."""

    # Data
    data: str = "market1501"
    root: str = ""
    data_options: dict[str, Any] = field(default_factory=dict)  # reader options (--data-opt)
    height: int = 256
    width: int = 128
    sampler: str = "random"  # "random": shuffled batches; "identity": P identities x K images
    batch_size: int = 32
    num_instances: int = 4  # K of the P x K identity sampler
    workers: int = field(default_factory=default_workers)  # one core left to the model
    flip: bool = True
    random_crop: bool = True
    crop_style: str = (
        "translate"  # "translate": torchreid's enlarge-1.125x-and-crop (p=0.5); "pad": pad 10 px, crop
    )
    erasing_fill: str = "mean"  # "mean": torchreid's fill (ImageNet mean values); "zero": 0 after normalizing
    random_erasing: float = 0.5  # probability; 0 disables
    color_jitter: bool = False  # torchreid's jitter (brightness 0.2, contrast 0.15)
    random_grayscale: float = 0.0  # probability of a grey copy (colour is camera-dependent); 0 disables
    # Model
    model: str = field(default_factory=default_model_name)  # what every other command defaults to
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    neck: str | None = None  # "bnneck" for the strong baseline's head
    # "auto": ImageNet weights (torch's cache, else downloaded), offline the model's shipped re-ID
    # weights (announced); "imagenet", "none" or a weights file say exactly which
    pretrained: str = "auto"
    weights: str | None = None  # initialize from this checkpoint (any format load_weights reads)
    # Losses: the defaults are LossWeights' (one place)
    ce_weight: float = _LOSSES.ce_weight
    label_smoothing: float = _LOSSES.label_smoothing
    triplet_weight: float = _LOSSES.triplet_weight
    triplet_margin: float = _LOSSES.triplet_margin
    triplet_soft: bool = _LOSSES.triplet_soft
    center_weight: float = _LOSSES.center_weight
    diversity_weight: float = _LOSSES.diversity_weight
    # Optimization
    optimizer: str = "adam"
    lr: float = 3e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "step"
    step_size: int = 20
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_factor: float = 0.01
    min_lr_factor: float = 0.0
    epochs: int = 100
    fixbase_epochs: int = 0
    fixbase_layers: str = (
        "new"  # "new": the model's new layers (last stage + head); "classifier": torchreid's
    )
    adam_beta2: float = 0.999  # torchreid uses 0.99
    # Learning-rate factor for StRA's own layers (Local and Mode Attention), which start from
    # scratch inside a pretrained network; 1: one rate for everything (the paper)
    stra_lr_factor: float = 1.0
    # Run
    eval_every: int = 10  # validate every N epochs and after the last one; 0 never
    # Validate on this many training ids held out (data/datasets/holdout.py) instead of the
    # dataset's query/gallery, which are then evaluated once, after the last epoch; 0: no holdout
    val_ids: int = 0
    eval_batch_size: int = 64
    seed: int = 1
    device: str = "auto"
    precision: str = "auto"  # auto, fp32, bf16 or fp16 (reid_stra.utils.precision)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Check values a run cannot start with; return self so calls chain."""

        positive = ("height", "width", "batch_size", "epochs", "eval_batch_size", "num_instances")
        for key in positive:
            if getattr(self, key) < 1:
                raise ReidError(f"{option_name(key)} {getattr(self, key)}: must be >= 1")
        for key in ("workers", "warmup_epochs", "fixbase_epochs", "eval_every", "step_size", "val_ids"):
            if getattr(self, key) < 0:
                raise ReidError(f"{option_name(key)} {getattr(self, key)}: must be >= 0")
        if not self.root:
            raise ReidError(
                "--root: no dataset folder given; pass --root DIR (or root: in the --config file)"
            )
        if self.sampler not in SAMPLERS:
            raise unknown_name_error("sampler", self.sampler, SAMPLERS)
        for key, choices in (
            ("crop_style", CROP_STYLES),
            ("erasing_fill", ERASING_FILLS),
            ("fixbase_layers", FIXBASE_LAYERS),
        ):
            if getattr(self, key) not in choices:
                raise unknown_name_error(key.replace("_", "-"), getattr(self, key), choices)
        if self.precision not in PRECISIONS:
            raise unknown_name_error("precision", self.precision, PRECISIONS)
        if self.stra_lr_factor <= 0:
            raise ReidError(f"{option_name('stra_lr_factor')} {self.stra_lr_factor}: must be > 0")
        if not 0.0 <= self.adam_beta2 < 1.0:
            raise ReidError(f"--adam-beta2 {self.adam_beta2}: must be in [0, 1)")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise unknown_name_error("optimizer", self.optimizer, OPTIMIZERS)
        if self.scheduler not in SCHEDULES:
            raise unknown_name_error("scheduler", self.scheduler, SCHEDULES)
        if self.sampler == "identity" and self.batch_size % self.num_instances:
            raise ReidError(
                f"--batch-size {self.batch_size}: must be a multiple of --num-instances {self.num_instances} "
                "for the identity (P x K) sampler"
            )
        if self.triplet_weight > 0 and self.sampler != "identity":
            raise ReidError(
                "triplet loss needs several images per identity in a batch; set sampler: identity "
                "(or use --recipe strong)"
            )
        for key in ("random_erasing", "random_grayscale"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ReidError(f"{key} {getattr(self, key)}: a probability in [0, 1]")
        if self.fixbase_epochs > self.epochs:
            raise ReidError(f"--fixbase-epochs {self.fixbase_epochs}: more than --epochs {self.epochs}")
        for key in ("ce_weight", "triplet_weight", "center_weight", "diversity_weight", "weight_decay"):
            if getattr(self, key) < 0:
                raise ReidError(f"{option_name(key)} {getattr(self, key)}: must be >= 0")
        return self


# The defaults above are the StRA paper's Market-1501 recipe (docs/METHOD.md §6, torchreid's softmax
# engine); a recipe states only what differs from them (fast-reid's _BASE_ idea).
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {"fixbase_epochs": 8},
    # "Bag of tricks" strong baseline (Luo et al. 2019): BNNeck, CE-LS + triplet, P x K = 16 x 4,
    # linear warm-up, random erasing, multistep decay.
    "strong": {
        "sampler": "identity",
        "batch_size": 64,
        "neck": "bnneck",
        "triplet_weight": 1.0,
        "lr": 3.5e-4,
        "scheduler": "multistep",
        "milestones": [40, 70],
        "warmup_epochs": 10,
        "epochs": 120,
    },
}
DEFAULT_RECIPE = "paper"

FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_TYPES = typing.get_type_hints(TrainConfig)


def option_name(key: str) -> str:
    """The command-line spelling of a config key (``batch_size`` -> ``--batch-size``)."""
    return "--" + key.replace("_", "-")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML (.yaml/.yml/.json) or TOML (.toml) mapping of config keys."""
    path = Path(path)
    if not path.is_file():
        raise ReidError(f"--config {path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except ImportError:
        raise ReidError(f"--config {path}: TOML needs Python 3.11+; write the file as YAML instead") from None
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        message = " ".join(str(exc).split())
        raise ReidError(
            f"--config {path}: not valid {path.suffix.lstrip('.') or 'YAML'} ({message})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ReidError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    return data


# Retired keys that older configs and checkpoints hold: read as what replaced them.
RETIRED_AMP_NOTE = (
    "config key 'amp' is retired: precision decides (amp: false is read as precision: fp32); "
    "remove it from the config"
)


def check_overrides(overrides: dict[str, Any], source: str) -> dict[str, Any]:
    """Reject unknown keys (with a suggestion) and values of the wrong type; return cleaned values.

    The retired ``amp`` switch is accepted: ``amp: false`` means ``precision: fp32`` unless the
    same values name a precision other than auto."""
    cleaned: dict[str, Any] = {}
    amp_off = False
    for key, value in overrides.items():
        key = str(key).replace("-", "_")
        if key == "log_indices":  # retired: a test's recorder is a TrainerHook now
            continue
        if key == "amp":
            if not isinstance(value, bool):
                raise ReidError(
                    f"{source}: 'amp' must be true or false, got {json.dumps(value, default=str)}"
                )
            amp_off = not value
            continue
        if key not in FIELDS:
            raise ReidError(f"{source}: unknown option '{key}'{suggest(key, FIELDS)}")
        cleaned[key] = _coerce(key, value, source)
    if amp_off and cleaned.get("precision", "auto") == "auto":
        cleaned["precision"] = "fp32"
    return cleaned


def mentions_retired_amp(*sources: dict[str, Any] | None) -> bool:
    """Whether a config file or options given by the user still use ``amp``."""
    return any("amp" in {str(k).replace("-", "_") for k in source or {}} for source in sources)


def resolve_config(
    recipe: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < recipe < config file < overrides (command-line options that were given)."""
    return resolve_config_and_recipe(recipe, config_file, overrides)[0]


def resolve_config_and_recipe(
    recipe: str | None = None, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> tuple[TrainConfig, str]:
    """:func:`resolve_config`, plus the recipe it used (``--recipe``, else the file's, else the default)."""
    file_values = dict(load_config_file(config_file)) if config_file else {}
    file_recipe = file_values.pop("recipe", None)
    name = recipe or file_recipe or DEFAULT_RECIPE
    if name not in RECIPES:
        raise unknown_name_error("recipe", str(name), RECIPES)
    values: dict[str, Any] = dict(RECIPES[name])
    values.update(check_overrides(file_values, f"--config {config_file}"))
    values.update(check_overrides(overrides or {}, "option"))
    return TrainConfig(**values), name


def save_config(config: TrainConfig, path: str | Path, recipe: str | None = None) -> None:
    """Write the resolved config as YAML (a file ``--config`` accepts), atomically.

    Every key is written, so the recipe line only records where the values came from.
    """

    header = "# Resolved reid-stra training config; rerun with: reid-stra train --config this-file\n"
    values = ({"recipe": recipe} if recipe else {}) | config.to_dict()
    text = yaml.safe_dump(values, sort_keys=False, default_flow_style=None)
    atomic_write_text(path, header + text)


# What runs saved before a key existed did: a resumed old run keeps training the way it started.
LEGACY_VALUES: dict[str, Any] = {"crop_style": "pad", "erasing_fill": "zero"}


def config_from_dict(values: dict[str, Any], source: str) -> TrainConfig:
    """Rebuild a config saved in a checkpoint; keys added in later versions keep the behaviour the
    run had (``LEGACY_VALUES``), or else the defaults."""
    return TrainConfig(**{**LEGACY_VALUES, **check_overrides(values, source)})


def _coerce(key: str, value: Any, source: str) -> Any:
    expected = _TYPES[key]
    args = typing.get_args(expected)
    optional = type(None) in args
    if value is None and optional:
        return None
    base = next((a for a in args if a is not type(None)), expected) if optional else expected
    base_origin = typing.get_origin(base) or base
    bad = ReidError(f"{source}: '{key}' must be {_type_name(base)}, got {json.dumps(value, default=str)}")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if base is str:
        if isinstance(value, str):
            return value
        raise bad
    if base_origin is list:
        if isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return list(value)
        raise bad
    if base_origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise bad
    return value  # pragma: no cover - every field type is handled above


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list of integers"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))
