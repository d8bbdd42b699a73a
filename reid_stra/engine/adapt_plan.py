"""What an adaptation run is given (:class:`AdaptPlan`) and depends on (:class:`AdaptConfig`), and
the checks a user can act on before any slow work (:func:`check_plan`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reid_stra.data.datasets import Sample
from reid_stra.engine.pseudo_labels import DENSITY_TOP_FRACTION
from reid_stra.errors import ReidError

MIN_IMAGES = 32  # fewer crops than this cannot form enough clusters of min_samples to learn from


@dataclass
class AdaptConfig:
    """Everything a run depends on (saved in the card and the checkpoint; resume checks it).

    Defaults follow Cluster Contrast ReID (k1 30, k2 6, min_samples 4, temperature 0.05,
    momentum 0.2, Adam with weight decay 5e-4, flip + pad-crop + random erasing) with a CPU-sized
    batch and fewer iterations per round. The clustering radius ``eps`` is, unless given, UDAP's:
    read once from round 1's features (:func:`~reid_stra.engine.pseudo_labels.density_radius`) and kept
    for every round.
    """

    rounds: int = 8
    iters: int = 100  # training batches per round
    batch_size: int = 32
    num_instances: int = 4
    lr: float = 1e-4
    weight_decay: float = 5e-4
    eps: float | None = None  # None: UDAP's density rule on round 1's features
    eps_top_fraction: float = DENSITY_TOP_FRACTION
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    temperature: float = 0.05
    momentum: float = 0.2
    camera_aware: bool = False  # cluster camera-centred features; CAP proxies per (cluster, camera)
    seed: int = 0
    workers: int = 2
    batch_size_extract: int = 64
    precision: str = "auto"
    device: str = "auto"

    def validate(self) -> None:
        positive = ("rounds", "iters", "batch_size", "num_instances", "min_samples", "k1", "k2")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ReidError(f"{name} {getattr(self, name)}: must be at least 1")
        if self.batch_size % self.num_instances:
            raise ReidError(
                f"batch_size {self.batch_size}: must be a multiple of num_instances {self.num_instances}"
            )
        if self.eps is not None and not 0.0 < self.eps < 1.0:
            raise ReidError(f"eps {self.eps}: a Jaccard distance radius, between 0 and 1 (or auto)")
        if not 0.0 < self.eps_top_fraction < 1.0:
            raise ReidError(
                f"eps_top_fraction {self.eps_top_fraction}: a fraction of all pairs, between 0 and 1"
            )
        if self.lr <= 0 or self.temperature <= 0 or not 0.0 <= self.momentum < 1.0:
            raise ReidError("lr and temperature must be positive and momentum in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AdaptPlan:
    """What to adapt, from what, into which folder."""

    paths: list[str]
    out_dir: Path
    config: AdaptConfig = field(default_factory=AdaptConfig)
    cameras: list[int] | None = None  # per path; needed only camera-aware
    # Research only: known person ids used as the clusters (a supervised upper bound, same budget).
    supervised_ids: list[int] | None = None
    model: str | None = None
    weights: str | None = None
    val_query: list[Sample] = field(default_factory=list)  # a labelled target split (research only)
    val_gallery: list[Sample] = field(default_factory=list)


def check_plan(plan: AdaptPlan) -> None:
    """The errors a user can fix, before any slow work."""
    plan.config.validate()
    if len(plan.paths) < MIN_IMAGES:
        raise ReidError(
            f"adapt: {len(plan.paths)} images given; at least {MIN_IMAGES} are needed (a few thousand "
            "crops of a few hundred people is typical)"
        )
    if plan.supervised_ids is not None and (
        len(plan.supervised_ids) != len(plan.paths)
        or any(pid is None or pid < 0 for pid in plan.supervised_ids)
    ):
        raise ReidError("--supervised: needs a person id for every image (Market-style names, --ids)")
    if plan.config.camera_aware:
        if plan.cameras is None or any(camera is None for camera in plan.cameras):
            raise ReidError(
                "--camera-aware: needs a camera id for every image (Market-style names, --id-pattern "
                "or --ids); drop --camera-aware otherwise"
            )
        if len(set(plan.cameras)) < 2:
            raise ReidError(
                "--camera-aware: every image is from one camera, so there is nothing to align across "
                "cameras; drop --camera-aware"
            )
