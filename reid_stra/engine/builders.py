"""What a training run is built from: dataset, model (with its initialization), loader, parameter
groups and the layers the fixbase epochs train. Kept apart from the loop in ``trainer.py``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_stra.data import load_dataset
from reid_stra.data.loading import build_train_loader, reraise_worker_errors
from reid_stra.data.transforms import build_train_transform
from reid_stra.engine.config import TrainConfig
from reid_stra.engine.optim import build_optimizer, build_scheduler
from reid_stra.errors import ReidError
from reid_stra.models import build_model, load_weights, shipped_weights
from reid_stra.utils.distributed import DistContext
from reid_stra.utils.notice import Notice


def new_layer_names(model: nn.Module) -> tuple[str, ...]:
    """Modules trained during the fixbase epochs, as the model declares them (``new_layer_names()``:
    the last backbone stage and the head for every model of the zoo)."""
    declared = getattr(model, "new_layer_names", None)
    names = tuple(declared()) if callable(declared) else ()
    if not names:
        raise ReidError(
            f"--fixbase-epochs: cannot tell which layers of {type(model).__name__} are new; "
            "use --fixbase-epochs 0"
        )
    return names


def fixbase_layers(model: nn.Module, config: TrainConfig) -> tuple[str, ...]:
    """What the fixbase epochs train: the model's new layers, or (torchreid) only the classifier."""
    if config.fixbase_layers == "classifier":
        if getattr(model, "classifier", None) is None:
            raise ReidError("--fixbase-layers classifier: this model has no classifier")
        return ("classifier",)
    return new_layer_names(model)


def is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def param_groups(model: nn.Module, criterion: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The model's own groups (``model.param_groups(lr, stra_lr_factor)``: it knows which of its
    layers are new), one group for a model that gives none, and the loss's parameters."""
    declared = getattr(model, "param_groups", None)
    if callable(declared):
        groups = list(declared(config.lr, config.stra_lr_factor))
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    loss_params = list(criterion.parameters())
    if loss_params:  # center-loss centers: no weight decay pulling them to the origin
        groups.append({"params": loss_params, "weight_decay": 0.0})
    return groups


def load_train_dataset(config: TrainConfig):

    dataset = load_dataset(config.data, config.root, **config.data_options)
    if not dataset.train:
        raise ReidError(
            f"--root {config.root}: the {config.data} training split is empty; nothing to train on"
        )
    return dataset


def model_kwargs(config: TrainConfig) -> dict[str, Any]:
    kwargs = dict(config.model_kwargs)
    if config.neck:
        kwargs["neck"] = config.neck
    return kwargs


def build_train_model(config: TrainConfig, num_classes: int, *, fresh: bool, notice: Notice) -> nn.Module:
    """The model with ImageNet/file initialization on a fresh run (resumed runs load the checkpoint)."""

    pretrained = config.pretrained if fresh and config.pretrained.lower() != "none" else None

    def build(init: str | None) -> nn.Module:
        # Validation and the exported weights use the size the model is trained at.
        return build_model(
            config.model,
            num_classes=num_classes,
            pretrained=init,
            input_size=(config.height, config.width),
            **model_kwargs(config),
        )

    try:
        if pretrained is not None and pretrained.lower() == "auto":
            model, pretrained = _build_auto_init(config.model, build, notice)
        else:
            model = build(pretrained)
    except ReidError as exc:
        if pretrained == "imagenet":
            raise ReidError(
                f"--pretrained imagenet: {exc}; pass --pretrained FILE (ImageNet weights on disk) "
                "or --pretrained none (random init)"
            ) from None
        raise
    except TypeError as exc:
        raise ReidError(
            f"--model {config.model}: bad model option ({exc}); check model_kwargs / --neck"
        ) from None
    pretrained_report = getattr(model, "pretrained_report", None)
    if pretrained is not None and pretrained_report is not None:
        notice(f"--pretrained: {pretrained_report.summary()}")
    if fresh and config.weights:
        report = load_weights(model, config.weights)
        notice(f"initialized from {config.weights}: {_report_line(report)}")
    return model


def _build_auto_init(name: str, build: Any, notice: Notice) -> tuple[nn.Module, str]:
    """``pretrained: auto``: ImageNet weights as the recipes expect; where they cannot be had
    (offline, nothing in torch's cache) the model's shipped re-ID weights, so that a fresh machine
    trains with the defaults; said either way, never silently."""
    try:
        return build("imagenet"), "imagenet"
    except ReidError as exc:
        shipped = shipped_weights(name)
        if shipped is None:
            raise ReidError(
                f"--pretrained auto: no ImageNet weights for {name} ({exc}) and no shipped weights; "
                "pass --pretrained FILE or --pretrained none"
            ) from None
        notice(
            f"--pretrained auto: ImageNet weights unavailable (offline?); starting from the shipped "
            f"re-ID weights {shipped.name} (pass --pretrained imagenet or FILE to choose)"
        )
        return build(str(shipped)), str(shipped)


def _report_line(report: Any) -> str:
    parts = []
    for name in ("loaded", "missing", "unexpected", "skipped"):
        value = getattr(report, name, None)
        if value is not None:
            parts.append(f"{len(value)} {name}")
    return ", ".join(parts) or str(report)


def metric_feature_dim(model: nn.Module) -> int:
    """Width of ``out["features"]`` (what triplet/center losses see); pre-BNNeck width for bnneck."""
    bnneck = getattr(model, "bnneck", None)
    if isinstance(bnneck, nn.BatchNorm1d):
        return bnneck.num_features
    cfg = getattr(model, "pretrained_cfg", None)
    dim = getattr(model, "embedding_dim", None) or (cfg.embedding_dim if cfg is not None else None)
    if not dim:
        raise ReidError(f"model {type(model).__name__}: unknown embedding size; it must set embedding_dim")
    return int(dim)


def build_loader(
    config: TrainConfig, dataset: Any, ctx: DistContext, per_rank_batch: int, device: torch.device
):

    transform = build_train_transform(
        (config.height, config.width),
        flip=config.flip,
        crop=config.crop_style if config.random_crop else "none",
        random_erasing=config.random_erasing,
        erasing_fill=config.erasing_fill,
        color_jitter=config.color_jitter,
        random_grayscale=config.random_grayscale,
    )
    return build_train_loader(
        dataset.train,
        transform,
        batch_size=per_rank_batch,
        sampler=config.sampler,
        num_instances=config.num_instances,
        workers=config.workers,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        pin_memory=device.type == "cuda",
    )


def reraise_worker_errors_in(loader):

    with reraise_worker_errors():
        yield from loader


def build_optimization(model: nn.Module, criterion: nn.Module, config: TrainConfig) -> tuple[Any, Any]:
    """The run's optimizer over the model's (and loss's) parameter groups, and its lr schedule."""
    optimizer = build_optimizer(
        param_groups(model, criterion, config),
        name=config.optimizer,
        lr=config.lr,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
        nesterov=config.nesterov,
        betas=(0.9, config.adam_beta2),
    )
    scheduler = build_scheduler(
        optimizer,
        schedule=config.scheduler,
        epochs=config.epochs,
        step_size=config.step_size,
        milestones=config.milestones,
        gamma=config.gamma,
        warmup_epochs=config.warmup_epochs,
        warmup_factor=config.warmup_factor,
        min_lr_factor=config.min_lr_factor,
    )
    return optimizer, scheduler


def seed_loader_epoch(loader: Any, seed: int, epoch: int, rank: int) -> None:
    """Select ``epoch``'s sample order and worker seeds, independent of earlier epochs.

    The sampler's order is a function of (seed, epoch); worker seeds are drawn from the loader's
    generator, so it is re-keyed to (seed, epoch, rank): a resumed run's workers then draw the
    same augmentations as the uninterrupted run's (with ``workers=0`` augmentation uses the
    process's own random state, which the checkpoint restores).
    """
    loader.sampler.set_epoch(epoch)
    loader.generator.manual_seed((seed * 1_000_003 + epoch) * 1_009 + rank)
