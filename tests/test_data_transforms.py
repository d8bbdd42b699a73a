"""Training/eval transforms: output size, normalization, each augmentation doing its job."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from reid_stra.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
)
from reid_stra.errors import ReidError


def _half_image() -> Image.Image:
    """Left half white, right half black: flips and shifts are visible."""
    img = Image.new("RGB", (32, 64), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 16, 64))
    return img


def test_train_transform_output_and_normalization() -> None:
    out = build_train_transform((64, 32), flip=False, crop="none", random_erasing=0)(_half_image())
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, 10, 2], white, atol=1e-4)
    assert torch.equal(out, build_eval_transform((64, 32))(_half_image()))  # no augmentation == eval


def test_flip_happens_about_half_the_time() -> None:
    transform = build_train_transform((64, 32), flip=True, crop="none", random_erasing=0)
    torch.manual_seed(0)
    flipped = sum(float(transform(_half_image())[0, 5, 2]) < 0 for _ in range(200))
    assert 60 < flipped < 140


def test_pad_and_crop_shifts_but_keeps_size() -> None:
    transform = build_train_transform((64, 32), flip=False, crop="pad", pad=4, random_erasing=0)
    torch.manual_seed(0)
    outs = [transform(_half_image()) for _ in range(30)]
    assert all(o.shape == (3, 64, 32) for o in outs)
    edges = {int((o[0, 30] > 0).sum()) for o in outs}  # white columns in a row move with the shift
    assert len(edges) > 1


def test_random_erasing_zero_fill_is_the_mean_colour() -> None:
    transform = build_train_transform(
        (64, 32), flip=False, crop="none", random_erasing=1.0, erasing_fill="zero"
    )
    torch.manual_seed(0)
    out = transform(Image.new("RGB", (32, 64), (255, 255, 255)))
    erased = (out == 0).all(dim=0)  # 0 after normalization is the ImageNet mean colour
    assert 0 < int(erased.sum()) < 64 * 32


def test_random_erasing_default_fill_is_torchreids() -> None:
    """torchreid writes the ImageNet mean values into the normalized tensor (not 0)."""
    transform = build_train_transform((64, 32), flip=False, crop="none", random_erasing=1.0)
    torch.manual_seed(0)
    out = transform(Image.new("RGB", (32, 64), (255, 255, 255)))
    erased = (out[0] == 0.485) & (out[1] == 0.456) & (out[2] == 0.406)
    assert 0 < int(erased.sum()) < 64 * 32


def test_translate_crop_shifts_half_the_time_without_black_borders() -> None:
    transform = build_train_transform((64, 32), flip=False, crop="translate", random_erasing=0)
    torch.manual_seed(0)
    image = Image.new("RGB", (32, 64), (200, 200, 200))
    image.paste((0, 0, 0), (0, 0, 16, 64))  # left half black
    outs = [transform(image) for _ in range(200)]
    assert all(o.shape == (3, 64, 32) for o in outs)
    plain = build_train_transform((64, 32), flip=False, crop="none", random_erasing=0)(image)
    unchanged = sum(torch.equal(o, plain) for o in outs)
    assert 60 < unchanged < 140  # p = 0.5
    # the right edge column is never black: enlarging never pulls in a padded border
    assert all(float(o[0, :, -1].min()) > 0 for o in outs)


def test_color_jitter_changes_colours() -> None:
    transform = build_train_transform((64, 32), flip=False, crop="none", random_erasing=0, color_jitter=True)
    torch.manual_seed(0)
    grey = Image.new("RGB", (32, 64), (128, 100, 90))
    assert len({round(float(transform(grey).mean()), 4) for _ in range(5)}) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pad": -1}, "pad -1"),
        ({"crop": "zoom"}, "crop 'zoom'"),
        ({"erasing_fill": "x"}, "erasing_fill"),
        ({"random_erasing": 1.5}, "random_erasing 1.5"),
        ({"size": (0, 32)}, "0x32"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ReidError, match=message):
        build_train_transform(**kwargs)
