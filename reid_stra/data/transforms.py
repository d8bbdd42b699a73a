"""Image transforms. The evaluation transform is shared by evaluate/extract/search."""

from __future__ import annotations

from collections.abc import Sequence

import torchvision.transforms as T

from reid_stra.errors import ReidError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchreid's colour jitter strength (brightness, contrast, saturation, hue).
COLOR_JITTER = (0.2, 0.15, 0.0, 0.0)


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


def build_train_transform(
    size: Sequence[int] = (256, 128),
    flip: bool = True,
    pad: int = 10,
    random_erasing: float = 0.5,
    color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The strong-baseline training augmentation on top of the eval transform.

    Resize to ``(height, width)``; random horizontal flip; pad by ``pad`` pixels (zeros) and
    crop back at a random place (small shifts, as in torchreid/fast-reid); optional colour
    jitter; to tensor and normalize; random erasing with probability ``random_erasing``, filled
    with 0, i.e. the mean colour after normalization. ``pad=0`` or ``random_erasing=0`` turns that
    step off.
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ReidError(f"--input-size {height}x{width}: height and width must be positive")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ReidError(f"pad {pad!r}: expected a non-negative number of pixels")
    if not 0.0 <= float(random_erasing) <= 1.0:
        raise ReidError(f"random_erasing {random_erasing!r}: expected a probability from 0 to 1")
    steps: list = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    if pad:
        steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
    if color_jitter:
        brightness, contrast, saturation, hue = COLOR_JITTER
        steps.append(T.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue))
    steps += [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]
    if random_erasing:
        steps.append(T.RandomErasing(p=float(random_erasing), scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0))
    return T.Compose(steps)
