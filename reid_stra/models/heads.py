"""The re-ID head shared by every backbone, and the model base class that owns it.

Necks (``neck=``):

- ``"fc"`` (the paper, torchreid's ``*_fc512``): global average pool -> 1x1 conv (no bias) -> BN;
  the BN output is the embedding, for the metric losses, the classifier and test time. Named
  ``global_avg_pool`` with the conv at ``.1`` and BN at ``.2``, as in the authors' checkpoint.
- ``"bnneck"`` (Luo et al.'s strong baseline): pooled features go to the triplet loss, a BN with
  frozen bias feeds a bias-free classifier, and test time uses the BN output.
- ``"none"``: the pooled features are the embedding (torchreid's MobileNetV2 without fc).

The head's attributes live directly on the model (not in a sub-module) so that state-dict keys
are ``global_avg_pool.*`` and ``classifier.*``, the authors' names.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reid_stra.errors import ReidError
from reid_stra.models.introspect import stra_parameter_names
from reid_stra.models.layers.mode_attention import ModeAttention
from reid_stra.models.layers.mode_record import record_mode_pooling
from reid_stra.models.layers.pooling import POOLINGS, global_pool

NECKS = ("fc", "bnneck", "none")
HEAD_LAYERS = ("global_avg_pool", "bnneck", "classifier")


class ReidNet(nn.Module):
    """Backbone + re-ID head. Subclasses build the backbone, then call :meth:`init_head`.

    eval: ``model(x)`` -> (B, D) embedding. train: ``{"logits", "features", "mode_pooling"}``,
    where ``mode_pooling`` lists each Mode Attention block's pooling maps (B, G, h, w) of this
    forward (empty without StRA), from which the loss computes the diversity term.
    """

    #: torchvision ImageNet weights for ``pretrained="imagenet"`` (None: none published).
    imagenet_url: str | None = None

    def init_head(
        self, feature_channels: int, num_classes: int, neck: str, embedding_dim: int, pooling: str = "avg"
    ) -> None:
        """``pooling``: ``"avg"`` (global average) or ``"gem"`` (generalized mean, learned p); the
        module keeps the name ``global_avg_pool`` (``global_avg_pool.0`` with a neck) either way."""
        if neck not in NECKS:
            raise ReidError(f"neck={neck!r}: unknown neck; choose one of {', '.join(NECKS)}")
        if pooling not in POOLINGS:
            raise ReidError(f"pooling={pooling!r}: unknown pooling; choose one of {', '.join(POOLINGS)}")
        if num_classes < 0:
            raise ReidError(f"num_classes={num_classes}: must be >= 0 (0 builds no classifier)")
        self.neck = neck
        if neck == "fc":
            if embedding_dim <= 0:
                raise ReidError(f"embedding_dim={embedding_dim}: must be > 0 for neck='fc'")
            conv = nn.Conv2d(feature_channels, embedding_dim, 1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            self.global_avg_pool = nn.Sequential(global_pool(pooling), conv, nn.BatchNorm2d(embedding_dim))
            self.embedding_dim = embedding_dim
        else:
            self.global_avg_pool = global_pool(pooling)
            self.embedding_dim = feature_channels
        if neck == "bnneck":
            self.bnneck = nn.BatchNorm1d(feature_channels)
            self.bnneck.bias.requires_grad_(False)
        self.classifier = None
        if num_classes > 0:
            self.classifier = nn.Linear(self.embedding_dim, num_classes, bias=neck != "bnneck")
            nn.init.normal_(self.classifier.weight, 0, 0.01)
            if self.classifier.bias is not None:
                nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w)."""
        raise NotImplementedError

    def new_layer_names(self) -> tuple[str, ...]:
        """Modules the fixbase epochs train: the last backbone stage and the head (timm's
        ``group_matcher`` idea: the model, not the trainer, knows its own layout)."""
        children = dict(self.named_children())
        return (*self.last_stage_names(), *(name for name in HEAD_LAYERS if name in children))

    def param_groups(self, lr: float, stra_lr_factor: float = 1.0) -> list[dict[str, Any]]:
        """The optimizer's groups of trainable parameters: one, or StRA's own layers (new in a
        pretrained network) in a second at ``stra_lr_factor`` x ``lr`` when that is not 1."""
        trainable = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        stra = stra_parameter_names(self) if stra_lr_factor != 1 else set()
        groups: list[dict[str, Any]] = [{"params": [p for name, p in trainable if name not in stra]}]
        if stra:
            groups.append({"params": [p for name, p in trainable if name in stra], "lr": lr * stra_lr_factor})
        return groups

    def last_stage_names(self) -> tuple[str, ...]:
        """The backbone's last stage (where the paper's new StRA layers sit): ResNet's layer4."""
        return ("layer4",) if "layer4" in dict(self.named_children()) else ()

    def mode_attention_blocks(self) -> list[ModeAttention]:
        return [m for m in self.modules() if isinstance(m, ModeAttention)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, Any]:
        if not self.training:
            return self._embed(x)
        with record_mode_pooling() as maps:
            embedding, metric_features = self._embed_and_metric(x)
        return {
            "logits": None if self.classifier is None else self.classifier(embedding),
            "features": metric_features,
            "mode_pooling": [m.weights for m in maps],
        }

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._embed_and_metric(x)[0]

    def _embed_and_metric(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.global_avg_pool(self.forward_features(x)).flatten(1)
        if self.neck == "bnneck":
            embedding = self.bnneck(pooled)
            metric_features = pooled
        else:
            embedding = metric_features = pooled
        return embedding, metric_features
