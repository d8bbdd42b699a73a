"""Cluster-level memories and their contrastive losses for clustering-based adaptation.

:class:`ClusterMemory` is Cluster Contrast ReID's (Dai et al., 2021): one unit vector per
pseudo-identity, initialized with the cluster's mean feature, scored against each image's feature
by an InfoNCE loss at temperature ``tau``, and updated by momentum with the batch's features after
every step (no gradient flows into the memory).

:class:`CameraAwareMemory` is the camera-aware proxy variant (CAP, Wang et al., AAAI 2021): one
proxy per (cluster, camera), an intra-camera loss over the proxies of the image's own camera, and
an inter-camera loss that pulls all of its cluster's proxies together against the hardest other
proxies. It helps where cameras differ in light and background more than people do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Rows of every process's batch, in rank order (torchrun); the identity in one process.
Gather = Callable[[torch.Tensor], torch.Tensor]


def _alone(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def cluster_centroids(features: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Unit-length mean feature of each of ``count`` groups (rows with label < 0 are ignored)."""
    keep = labels >= 0
    sums = torch.zeros(count, features.shape[1], dtype=torch.float32)
    sums.index_add_(0, labels[keep], features[keep].float())
    return F.normalize(sums, dim=1)


class ClusterMemory(nn.Module):
    """One momentum-updated centroid per cluster; InfoNCE over all of them."""

    def __init__(self, centroids: torch.Tensor, temperature: float = 0.05, momentum: float = 0.2) -> None:
        super().__init__()
        self.temperature, self.momentum = temperature, momentum
        self.register_buffer("features", F.normalize(centroids.float(), dim=1).clone())

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor, cameras: torch.Tensor, gather: Gather = _alone
    ) -> torch.Tensor:
        features = F.normalize(features.float(), dim=1)
        logits = features @ self.features.clone().t() / self.temperature  # updated in place below
        loss = F.cross_entropy(logits, labels)
        self.update(gather(features.detach()), gather(labels))
        return loss

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        # One image at a time, as the reference does: a cluster twice in a batch moves twice.
        for feature, label in zip(features, labels.tolist(), strict=True):
            row = self.momentum * self.features[label] + (1.0 - self.momentum) * feature
            self.features[label] = row / row.norm().clamp_min(1e-12)


class CameraAwareMemory(nn.Module):
    """Proxies per (cluster, camera): intra-camera plus inter-camera contrastive losses (CAP)."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        cameras: torch.Tensor,
        temperature: float = 0.07,
        momentum: float = 0.2,
        inter_weight: float = 0.5,
        hard_negatives: int = 50,
    ) -> None:
        super().__init__()
        self.temperature, self.momentum = temperature, momentum
        self.inter_weight, self.hard_negatives = inter_weight, hard_negatives
        keep = labels >= 0
        pairs = np.unique(np.stack([labels[keep].numpy(), cameras[keep].numpy()], axis=1), axis=0)
        self.proxy_of = {(int(c), int(k)): i for i, (c, k) in enumerate(pairs)}
        proxy_index = torch.full((len(labels),), -1, dtype=torch.long)
        for row in torch.nonzero(keep).flatten().tolist():
            proxy_index[row] = self.proxy_of[(int(labels[row]), int(cameras[row]))]
        self.register_buffer("features", cluster_centroids(features, proxy_index, len(pairs)))
        self.register_buffer("proxy_cluster", torch.as_tensor(pairs[:, 0], dtype=torch.long))
        self.register_buffer("proxy_camera", torch.as_tensor(pairs[:, 1], dtype=torch.long))

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor, cameras: torch.Tensor, gather: Gather = _alone
    ) -> torch.Tensor:
        features = F.normalize(features.float(), dim=1)
        own = torch.tensor(
            [self.proxy_of[(int(c), int(k))] for c, k in zip(labels.tolist(), cameras.tolist(), strict=True)]
        )
        scores = features @ self.features.clone().t() / self.temperature
        # Intra-camera: the image's proxy against the other proxies of its camera.
        same_camera = self.proxy_camera[None, :] == cameras[:, None]
        intra = F.cross_entropy(scores.masked_fill(~same_camera, float("-inf")), own)
        # Inter-camera: every proxy of its cluster against the hardest proxies of other clusters.
        positive = self.proxy_cluster[None, :] == labels[:, None]
        negatives = scores.masked_fill(positive, float("-inf"))
        hard = negatives.topk(min(self.hard_negatives, negatives.shape[1]), dim=1).values
        log_denominator = torch.logsumexp(
            torch.cat([scores.masked_fill(~positive, float("-inf")), hard], 1), 1
        )
        positive_log_prob = (scores - log_denominator[:, None]).masked_fill(~positive, 0.0)
        inter = -(positive_log_prob.sum(1) / positive.sum(1)).mean()
        self.update(gather(features.detach()), gather(own))
        return intra + self.inter_weight * inter

    @torch.no_grad()
    def update(self, features: torch.Tensor, proxies: torch.Tensor) -> None:
        for feature, proxy in zip(features, proxies.tolist(), strict=True):
            row = self.momentum * self.features[proxy] + (1.0 - self.momentum) * feature
            self.features[proxy] = row / row.norm().clamp_min(1e-12)
