"""Image transforms. The evaluation transform is shared by evaluate/extract/search."""

from __future__ import annotations

from collections.abc import Sequence

import torchvision.transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_eval_transform(
    size: Sequence[int] = (256, 128),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """Resize to ``(height, width)``, to tensor, normalize: what every test-time path uses."""
    height, width = int(size[0]), int(size[1])
    return T.Compose(
        [
            T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )
