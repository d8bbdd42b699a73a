"""Re-ID training losses and the weighted combination a recipe asks for.

The three classic re-ID losses (label-smoothed cross-entropy, batch-hard triplet, center) plus
the StRA diversity term the model computes itself. :class:`ReidLoss` adds them with the
config's weights and also returns each part, so the metrics log shows what is being optimized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_stra.errors import ReidError


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against ``(1 - eps) * one_hot + eps / num_classes`` (Szegedy et al. 2016).

    Smoothing keeps the classifier from becoming over-confident on the few images per identity,
    which is what the paper and every strong re-ID baseline train with (eps = 0.1).
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ReidError(f"label_smoothing: {epsilon} is outside [0, 1); use e.g. 0.1 (or 0 to disable)")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=1)
        smoothed = torch.full_like(log_probs, self.epsilon / self.num_classes)
        smoothed.scatter_(1, targets.unsqueeze(1), 1.0 - self.epsilon + self.epsilon / self.num_classes)
        return (-smoothed * log_probs).sum(dim=1).mean()


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all rows; clamped before the sqrt so gradients stay finite."""
    squared = features.pow(2).sum(dim=1, keepdim=True)
    dist = squared + squared.t() - 2.0 * features @ features.t()
    return dist.clamp(min=1e-12).sqrt()


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al. 2017): hardest positive vs hardest negative per anchor.

    ``soft=True`` replaces the hinge ``max(0, d_ap - d_an + margin)`` by ``softplus(d_ap - d_an)``
    (the "soft margin"), which has no margin to tune. An anchor without another image of its
    identity, or without any other identity in the batch, has no triplet and is left out.
    """

    def __init__(self, margin: float = 0.3, soft: bool = False, normalize: bool = False) -> None:
        super().__init__()
        if not soft and margin <= 0:
            raise ReidError(
                f"triplet_margin: {margin} must be > 0; or set triplet_soft: true for a soft margin"
            )
        self.margin = margin
        self.soft = soft
        self.normalize = normalize

    def mine(self, features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``(d_ap, d_an, valid)``: per-anchor hardest distances and which anchors have a triplet."""
        features = features.float()
        if self.normalize:
            features = F.normalize(features, dim=1)
        dist = pairwise_euclidean(features)
        same = targets.unsqueeze(0) == targets.unsqueeze(1)
        not_self = ~torch.eye(len(targets), dtype=torch.bool, device=targets.device)
        positive = same & not_self
        negative = ~same
        d_ap = dist.masked_fill(~positive, float("-inf")).max(dim=1).values
        d_an = dist.masked_fill(~negative, float("inf")).min(dim=1).values
        valid = positive.any(dim=1) & negative.any(dim=1)
        return d_ap, d_an, valid

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        d_ap, d_an, valid = self.mine(features, targets)
        if not bool(valid.any()):
            # Still part of the graph so DDP and AMP see a gradient (of zero) for every input.
            return features.sum() * 0.0
        diff = d_ap[valid] - d_an[valid]
        losses = F.softplus(diff) if self.soft else F.relu(diff + self.margin)
        return losses.mean()


class CenterLoss(nn.Module):
    """Squared distance of each feature to its identity's learned center (Wen et al. 2016).

    ``loss = mean_i ||f_i - c_{y_i}||^2``. The centers are parameters trained with the model, so
    they are part of the checkpoint (and of the optimizer) whenever this loss is enabled.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if features.shape[1] != self.centers.shape[1]:
            raise ReidError(
                f"center loss: features have {features.shape[1]} dims but centers {self.centers.shape[1]}; "
                "this is a bug in the model's feature output"
            )
        return (features.float() - self.centers[targets]).pow(2).sum(dim=1).mean()


def mode_diversity(pooling: torch.Tensor) -> torch.Tensor:
    """Spec §3's diversity loss per sample, ``G - sum_i max_g P[g, i]`` for pooling maps P of
    shape (B, G, h, w): 0 when the modes pool from disjoint places, G - 1 when they coincide."""
    return pooling.shape[1] - pooling.flatten(2).max(dim=1).values.sum(dim=-1)


def mean_mode_diversity(pooling: list[torch.Tensor]) -> torch.Tensor:
    """The training term: the mean over Mode Attention blocks of the batch-mean diversity."""
    return torch.stack([mode_diversity(p).mean() for p in pooling]).mean()


@dataclass(frozen=True)
class LossWeights:
    """Which losses are on and how much each counts (a slice of :class:`TrainConfig`)."""

    ce_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_weight: float = 0.0
    triplet_margin: float = 0.3
    triplet_soft: bool = False
    center_weight: float = 0.0
    diversity_weight: float = 0.1  # the StRA paper's weight; no effect on models without StRA


class ReidLoss(nn.Module):
    """``ce_w * CE-LS + tri_w * triplet + center_w * center + div_w * diversity`` on the model's dict.

    ``forward(out, targets)`` takes the train-mode model output ``{"logits", "features",
    "mode_pooling"}`` and returns ``(total, parts)``; ``parts`` maps each enabled loss (unweighted)
    and ``acc`` (classifier top-1 accuracy) to detached scalars for logging.
    """

    def __init__(self, weights: LossWeights, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.weights = weights
        if weights.ce_weight <= 0 and weights.triplet_weight <= 0 and weights.center_weight <= 0:
            raise ReidError(
                "loss: ce_weight, triplet_weight and center_weight are all 0; enable at least one"
            )
        self.ce = (
            CrossEntropyLabelSmooth(num_classes, weights.label_smoothing) if weights.ce_weight > 0 else None
        )
        self.triplet = (
            TripletLoss(weights.triplet_margin, weights.triplet_soft) if weights.triplet_weight > 0 else None
        )
        self.center = CenterLoss(num_classes, feat_dim) if weights.center_weight > 0 else None

    def forward(
        self, out: dict[str, torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=targets.device)
        logits = out.get("logits")
        if self.ce is not None:
            if logits is None:
                raise ReidError("loss: cross-entropy is on but the model has no classifier (num_classes=0)")
            parts["ce"] = self.ce(logits, targets)
            total = total + self.weights.ce_weight * parts["ce"]
        if self.triplet is not None:
            parts["triplet"] = self.triplet(out["features"], targets)
            total = total + self.weights.triplet_weight * parts["triplet"]
        if self.center is not None:
            parts["center"] = self.center(out["features"], targets)
            total = total + self.weights.center_weight * parts["center"]
        pooling = out.get("mode_pooling")
        if pooling:
            diversity = mean_mode_diversity(pooling)
            # Logged even when its weight is 0: how far the modes overlap is worth watching.
            parts["diversity"] = diversity.float()
            if self.weights.diversity_weight > 0:
                total = total + self.weights.diversity_weight * parts["diversity"]
        logged = {name: value.detach() for name, value in parts.items()}
        if logits is not None:
            logged["acc"] = (logits.detach().argmax(dim=1) == targets).float().mean()
        return total, logged


class ModelWithLoss(nn.Module):
    """Model + loss as one module, so DDP also averages the gradients of loss parameters (centers)."""

    def __init__(self, model: nn.Module, criterion: ReidLoss) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.model(images)
        # The losses run in float32 whatever the model's autocast: logits and features cast up.
        out = {key: _to_float(value) for key, value in out.items()}
        with torch.autocast(device_type=images.device.type, enabled=False):
            return self.criterion(out, targets)


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float()
    if isinstance(value, list):
        return [_to_float(v) for v in value]
    return value
