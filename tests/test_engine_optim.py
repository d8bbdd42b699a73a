"""Learning-rate schedules: warm-up, step/multistep/cosine values, exact state after resume."""

from __future__ import annotations

import math

import pytest
import torch

from reid_stra.engine.optim import build_optimizer, build_scheduler, lr_factor
from reid_stra.errors import ReidError


def _lrs(epochs: int, **schedule) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([{"params": [param]}], name="sgd", lr=0.1)
    scheduler = build_scheduler(optimizer, epochs=epochs, **schedule)
    seen = []
    for _ in range(epochs):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_linear_warmup_then_multistep() -> None:
    lrs = _lrs(8, schedule="multistep", milestones=[4, 6], gamma=0.1, warmup_epochs=3, warmup_factor=0.1)
    assert lrs == pytest.approx([0.01, 0.04, 0.07, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_step_decay() -> None:
    assert _lrs(5, schedule="step", step_size=2, gamma=0.5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_cosine_after_warmup() -> None:
    lrs = _lrs(5, schedule="cosine", warmup_epochs=1, warmup_factor=0.5, min_lr_factor=0.0)
    expected = [0.05] + [0.1 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert lrs == pytest.approx(expected)


def test_scheduler_state_restores_the_same_rate() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([{"params": [param]}], name="adam", lr=1.0)
    schedule = {"schedule": "multistep", "epochs": 10, "milestones": [3], "warmup_epochs": 2}
    scheduler = build_scheduler(optimizer, **schedule)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_opt = build_optimizer([{"params": [param]}], name="adam", lr=1.0)
    fresh = build_scheduler(fresh_opt, **schedule)
    fresh_opt.load_state_dict(optimizer.state_dict())
    fresh.load_state_dict(state)
    fresh_opt.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_group_overrides_and_optimizer_kinds() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], name="adamw", lr=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    assert isinstance(build_optimizer([{"params": [a]}], name="SGD", lr=0.1), torch.optim.SGD)


def test_bad_names_are_user_errors() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ReidError, match="did you mean 'adam'"):
        build_optimizer([{"params": [param]}], name="adma", lr=0.1)
    with pytest.raises(ReidError, match="scheduler"):
        lr_factor(0, schedule="linear", epochs=3)


def test_stra_layers_get_their_own_rate_only_when_asked() -> None:
    """``stra_lr_factor``: Local and Mode Attention train faster; the pretrained layers do not."""
    from reid_stra.engine.builders import param_groups
    from reid_stra.engine.config import TrainConfig
    from reid_stra.models import build_model

    model = build_model("stra_mobilenetv2", num_classes=5)
    criterion = torch.nn.Module()
    plain = param_groups(model, criterion, TrainConfig(root="x", lr=3e-4))
    assert len(plain) == 1 and len(plain[0]["params"]) == len(list(model.parameters()))
    groups = param_groups(model, criterion, TrainConfig(root="x", lr=3e-4, stra_lr_factor=10))
    names = {id(p): name for name, p in model.named_parameters()}
    fast = [names[id(p)] for p in groups[1]["params"]]
    assert groups[1]["lr"] == pytest.approx(3e-3) and "lr" not in groups[0]
    assert fast and all(".stra.mask_conv." in n or ".stra.moe." in n for n in fast)
    assert "features.15.conv.1.0.weight" in {names[id(p)] for p in groups[0]["params"]}  # depthwise
    assert len(fast) + len(groups[0]["params"]) == len(names)
    optimizer = build_optimizer(groups, name="adam", lr=3e-4)
    scheduler = build_scheduler(optimizer, schedule="step", epochs=4, step_size=2)
    scheduler.resume_at(2)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([3e-5, 3e-4])
    with pytest.raises(ReidError, match="stra-lr-factor 0"):
        TrainConfig(root="x", stra_lr_factor=0).validate()
