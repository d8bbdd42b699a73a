"""Image transforms. The evaluation transform is shared by evaluate/extract/search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from reid_stra.data.imagenet import DEFAULT_INPUT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from reid_stra.errors import ReidError

# torchreid's colour jitter strength (brightness, contrast, saturation, hue).
COLOR_JITTER = (0.2, 0.15, 0.0, 0.0)


def build_eval_transform(
    size: Sequence[int] = DEFAULT_INPUT_SIZE,
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


def resize_to_uint8(image: Image.Image, size: Sequence[int] = DEFAULT_INPUT_SIZE) -> torch.Tensor:
    """The eval transform's resize, kept as a 3 x H x W uint8 tensor: per-crop work stays in PIL
    and the float conversion happens once per batch (:func:`normalize_batch`)."""
    resized = T.functional.resize(image, [int(size[0]), int(size[1])], T.InterpolationMode.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.uint8, copy=True)).permute(2, 0, 1)


def normalize_batch(
    batch: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """N x 3 x H x W uint8 -> float model input, the same arithmetic as ``ToTensor`` then
    ``Normalize`` (so the same bits as :func:`build_eval_transform`), in a few whole-batch ops
    instead of three small ones per crop."""
    channels = (1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=batch.device).view(channels)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=batch.device).view(channels)
    return batch.to(torch.float32).div_(255).sub_(mean_t).div_(std_t)


CROPS = ("translate", "pad", "none")
ERASING_FILLS = ("mean", "zero")


class RandomTranslate:
    """torchreid's ``Random2DTranslation``: with probability ``p``, enlarge by ``scale`` and crop
    back at a random place (otherwise a plain resize). Unlike zero padding it adds no black
    borders, and the shift stays a fixed fraction of the crop at any input size.
    """

    def __init__(self, size: Sequence[int], p: float = 0.5, scale: float = 1.125) -> None:
        self.height, self.width = int(size[0]), int(size[1])
        self.p, self.scale = float(p), float(scale)

    def __call__(self, image):
        # torch's generator, like the torchvision transforms around it, so workers and resumed
        # runs draw the same shifts.
        if float(torch.rand(())) >= self.p:
            return image.resize((self.width, self.height), Image.BILINEAR)
        big_w, big_h = round(self.width * self.scale), round(self.height * self.scale)
        enlarged = image.resize((big_w, big_h), Image.BILINEAR)
        x = int(torch.randint(0, big_w - self.width + 1, ()))
        y = int(torch.randint(0, big_h - self.height + 1, ()))
        return enlarged.crop((x, y, x + self.width, y + self.height))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size=({self.height}, {self.width}), p={self.p}, scale={self.scale})"


def build_train_transform(
    size: Sequence[int] = DEFAULT_INPUT_SIZE,
    flip: bool = True,
    crop: str = "translate",
    pad: int = 10,
    random_erasing: float = 0.5,
    erasing_fill: str = "mean",
    color_jitter: bool = False,
    random_grayscale: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The training augmentation on top of the eval transform (torchreid's by default).

    Resize to ``(height, width)``; random horizontal flip; a random shift: ``crop="translate"``
    (torchreid: enlarge 1.125x and crop back, half the time), ``"pad"`` (pad by ``pad`` zero
    pixels and crop back; ``pad=0`` turns it off) or ``"none"``; optional colour jitter and a
    grey copy with probability ``random_grayscale`` (colour casts differ between cameras); to tensor
    and normalize; random erasing with probability ``random_erasing``, filled with ``mean``'s
    values (torchreid's fill, ``erasing_fill="mean"``) or with 0 (the mean colour after
    normalization, ``"zero"``).
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ReidError(f"--input-size {height}x{width}: height and width must be positive")
    if crop not in CROPS:
        raise ReidError(f"crop {crop!r}: choose one of {', '.join(CROPS)}")
    if erasing_fill not in ERASING_FILLS:
        raise ReidError(f"erasing_fill {erasing_fill!r}: choose one of {', '.join(ERASING_FILLS)}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ReidError(f"pad {pad!r}: expected a non-negative number of pixels")
    for key, value in (("random_erasing", random_erasing), ("random_grayscale", random_grayscale)):
        if not 0.0 <= float(value) <= 1.0:
            raise ReidError(f"{key} {value!r}: expected a probability from 0 to 1")
    steps: list = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    if crop == "translate":
        steps.append(RandomTranslate((height, width)))
    elif crop == "pad" and pad:
        steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
    if color_jitter:
        brightness, contrast, saturation, hue = COLOR_JITTER
        steps.append(T.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue))
    if random_grayscale:
        steps.append(T.RandomGrayscale(p=float(random_grayscale)))
    steps += [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]
    if random_erasing:
        fill = tuple(float(v) for v in mean) if erasing_fill == "mean" else 0
        steps.append(
            T.RandomErasing(p=float(random_erasing), scale=(0.02, 0.4), ratio=(0.3, 3.3), value=fill)
        )
    return T.Compose(steps)
