"""How the synthetic data's people and cameras are drawn (Pillow only).

A person's *identity* is a :class:`Look` (clothing colours and patterns, sleeves/shorts, hat, bag,
build); a *camera* is a :class:`Camera` (background, light, blur, framing). Both are drawn from
random streams keyed by (seed, pid) and (seed, camera), and :func:`render` draws one image from
its own stream, so every image is the same whatever the order of generation.
:mod:`reid_stra.data.synthetic` lays the images out as a dataset.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

_SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges at 64x128 for almost no cost


@dataclass(frozen=True)
class Look:
    """What identifies a person: clothes, accessories and build."""

    shirt: tuple[int, int, int]
    shirt2: tuple[int, int, int]
    pattern: str  # solid | hstripes | vstripes | twotone | logo
    long_sleeves: bool
    trousers: tuple[int, int, int]
    shorts: bool
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoes: tuple[int, int, int]
    hat: tuple[int, int, int] | None
    bag: str  # none | backpack | shoulder
    bag_colour: tuple[int, int, int]
    width: float
    height: float
    head: float


@dataclass(frozen=True)
class Camera:
    """What a camera adds: scene, light and framing."""

    background: tuple[int, int, int]
    background2: tuple[int, int, int]
    ground: tuple[int, int, int]
    texture: str  # gradient | hstripes | tiles | noise
    horizon: float
    tint: tuple[float, float, float]
    brightness: float
    contrast: float
    blur: float
    scale: float
    offset_x: float
    offset_y: float
    noise: float


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> tuple[int, ...]:
    hue = float(rng.random())
    return _hsv(hue, float(rng.uniform(*sat)), float(rng.uniform(*val)))


def _hsv(hue: float, sat: float, val: float) -> tuple[int, int, int]:

    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def person_look(seed: int, pid: int) -> Look:
    rng = np.random.default_rng([seed, 1, pid])
    skin_tone = float(rng.uniform(0.35, 0.95))
    return Look(
        shirt=_colour(rng, (0.35, 1.0), (0.35, 1.0)),
        shirt2=_colour(rng, (0.2, 1.0), (0.2, 1.0)),
        pattern=str(rng.choice(["solid", "solid", "hstripes", "vstripes", "twotone", "logo"])),
        long_sleeves=bool(rng.random() < 0.5),
        trousers=_colour(rng, (0.1, 0.9), (0.12, 0.8)),
        shorts=bool(rng.random() < 0.3),
        skin=_hsv(0.07, 0.45 - 0.15 * skin_tone, skin_tone),
        hair=_hsv(0.08, 0.6, float(rng.uniform(0.05, 0.6))),
        shoes=_colour(rng, (0.0, 0.6), (0.05, 0.9)),
        hat=_colour(rng, (0.3, 1.0), (0.3, 1.0)) if rng.random() < 0.3 else None,
        bag=str(rng.choice(["none", "none", "backpack", "shoulder"])),
        bag_colour=_colour(rng, (0.2, 1.0), (0.15, 0.9)),
        width=float(rng.uniform(0.8, 1.25)),
        height=float(rng.uniform(0.9, 1.0)),
        head=float(rng.uniform(0.85, 1.15)),
    )


def camera_style(seed: int, cam: int) -> Camera:
    rng = np.random.default_rng([seed, 2, cam])
    return Camera(
        background=_colour(rng, (0.05, 0.6), (0.25, 0.95)),
        background2=_colour(rng, (0.05, 0.6), (0.25, 0.95)),
        ground=_colour(rng, (0.0, 0.4), (0.2, 0.7)),
        texture=str(rng.choice(["gradient", "hstripes", "tiles", "noise"])),
        horizon=float(rng.uniform(0.55, 0.85)),
        tint=tuple(float(t) for t in rng.uniform(0.8, 1.2, size=3)),
        brightness=float(rng.uniform(0.65, 1.25)),
        contrast=float(rng.uniform(0.75, 1.15)),
        blur=float(rng.choice([0.0, 0.0, 0.6, 1.2])),
        scale=float(rng.uniform(0.72, 0.95)),
        offset_x=float(rng.uniform(-0.08, 0.08)),
        offset_y=float(rng.uniform(-0.04, 0.04)),
        noise=float(rng.uniform(2.0, 9.0)),
    )


def render(
    look: Look, cam: Camera, rng: np.random.Generator, size: tuple[int, int], junk: bool = False
) -> Image.Image:
    """One person crop: camera background, the figure with per-image jitter, camera photometrics."""
    height, width = size
    big_w, big_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    canvas = _background(cam, rng, big_w, big_h)
    draw = ImageDraw.Draw(canvas)
    figure_h = big_h * cam.scale * look.height * float(rng.uniform(0.94, 1.06))
    cx = big_w * (0.5 + cam.offset_x + float(rng.normal(0, 0.03)))
    top = big_h * (0.5 + cam.offset_y + float(rng.normal(0, 0.015))) - figure_h / 2
    if junk:  # a bad detection: mostly background with a fragment of someone, off-centre
        cx += big_w * float(rng.choice([-0.55, 0.55]))
        top += figure_h * float(rng.uniform(0.3, 0.6))
    _draw_person(draw, look, cx, top, figure_h, rng, facing_left=bool(rng.random() < 0.5))
    if cam.blur:
        canvas = canvas.filter(ImageFilter.GaussianBlur(cam.blur * _SUPERSAMPLE))
    small = canvas.resize((width, height), Image.Resampling.BOX)
    return _photometric(small, cam, rng)


def _background(cam: Camera, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    top_c = np.array(cam.background, np.float32)
    low_c = np.array(cam.background2, np.float32)
    shift = float(rng.uniform(0, 1))  # the scene moves a little between frames
    if cam.texture == "gradient":
        img = top_c + (low_c - top_c) * ys + 0 * xs
    elif cam.texture == "hstripes":
        stripes = (np.sin((ys * 9 + shift) * 2 * math.pi) > 0).astype(np.float32)
        img = top_c + (low_c - top_c) * stripes + 0 * xs
    elif cam.texture == "tiles":
        tiles = ((np.floor(xs * 4 + shift) + np.floor(ys * 8)) % 2).astype(np.float32)
        img = top_c + (low_c - top_c) * tiles
    else:
        coarse = rng.random((8, 4, 1)).astype(np.float32)
        noise = np.kron(coarse, np.ones((height // 8 + 1, width // 4 + 1, 1), np.float32))[:height, :width]
        img = top_c + (low_c - top_c) * noise
    horizon = int(height * (cam.horizon + float(rng.normal(0, 0.02))))
    img = np.broadcast_to(img, (height, width, 3)).copy()
    depth = np.linspace(0.8, 1.15, height - horizon, dtype=np.float32)[:, None, None]
    img[horizon:] = np.array(cam.ground, np.float32) * depth
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def _draw_person(
    draw: ImageDraw.ImageDraw,
    look: Look,
    cx: float,
    top: float,
    h: float,
    rng: np.random.Generator,
    facing_left: bool,
) -> None:
    """Draw a standing/walking person whose feet are at ``top + h``."""
    side = -1.0 if facing_left else 1.0
    shoulder_w = h * 0.26 * look.width
    hip_w = shoulder_w * 0.78
    head_r = h * 0.068 * look.head
    head_top = top
    neck_y = head_top + 2 * head_r
    torso_top = neck_y + h * 0.015
    hip_y = top + h * 0.53
    foot_y = top + h
    limb = max(2.0, shoulder_w * 0.23)
    swing = float(rng.normal(0, 0.22))  # arm/leg swing in radians: the per-image pose
    stride = float(abs(rng.normal(0, 0.12)))

    if look.bag == "backpack":  # behind the body, peeking out on the back side
        bx = cx - side * shoulder_w * 0.45
        draw.rounded_rectangle(
            _box(bx - shoulder_w * 0.32, torso_top + h * 0.02, bx + shoulder_w * 0.32, hip_y - h * 0.04),
            radius=limb * 0.5,
            fill=look.bag_colour,
        )
    # legs
    leg_len = foot_y - hip_y
    for sign in (-1.0, 1.0):
        hx = cx + sign * hip_w * 0.25
        angle = sign * stride
        fx = hx + math.sin(angle) * leg_len
        fy = hip_y + math.cos(angle) * leg_len
        knee = (hx + (fx - hx) * 0.5, hip_y + (fy - hip_y) * 0.5)
        draw.line([(hx, hip_y), knee], fill=look.trousers, width=int(limb * 1.25))
        draw.line([knee, (fx, fy)], fill=look.skin if look.shorts else look.trousers, width=int(limb * 1.1))
        draw.ellipse(
            _box(fx - limb * 0.9 + side * limb * 0.4, fy - limb * 0.5, fx + limb * 0.9, fy + limb * 0.45),
            fill=look.shoes,
        )
    # torso (a trapezoid, shoulders wider than hips)
    torso = [
        (cx - shoulder_w / 2, torso_top),
        (cx + shoulder_w / 2, torso_top),
        (cx + hip_w / 2, hip_y),
        (cx - hip_w / 2, hip_y),
    ]
    draw.polygon(torso, fill=look.shirt)
    _draw_pattern(draw, look, cx, torso_top, hip_y, hip_w, shoulder_w)
    # arms
    arm_len = h * 0.36
    for sign in (-1.0, 1.0):
        sx = cx + sign * (shoulder_w / 2 - limb * 0.35)
        sy = torso_top + limb * 0.4
        angle = sign * 0.12 - sign * swing
        hx = sx + math.sin(angle) * arm_len
        hy = sy + math.cos(angle) * arm_len
        elbow = (sx + (hx - sx) * 0.5, sy + (hy - sy) * 0.5)
        draw.line([(sx, sy), elbow], fill=look.shirt, width=int(limb))
        draw.line(
            [elbow, (hx, hy)], fill=look.shirt if look.long_sleeves else look.skin, width=int(limb * 0.9)
        )
        draw.ellipse(
            _box(hx - limb * 0.45, hy - limb * 0.45, hx + limb * 0.45, hy + limb * 0.45), fill=look.skin
        )
    if look.bag == "shoulder":  # strap across the chest, bag at the hip
        draw.line(
            [(cx - side * shoulder_w * 0.4, torso_top), (cx + side * hip_w * 0.5, hip_y - h * 0.03)],
            fill=look.bag_colour,
            width=max(1, int(limb * 0.35)),
        )
        bx = cx + side * hip_w * 0.55
        draw.rectangle(
            _box(bx - limb * 1.2, hip_y - h * 0.07, bx + limb * 1.2, hip_y + h * 0.04), fill=look.bag_colour
        )
    # head, hair, hat
    draw.rectangle(_box(cx - limb * 0.4, neck_y - limb * 0.5, cx + limb * 0.4, torso_top + 1), fill=look.skin)
    head = _box(cx - head_r * 0.85, head_top, cx + head_r * 0.85, neck_y)
    draw.ellipse(head, fill=look.skin)
    draw.chord(head, 180, 360, fill=look.hair)
    if look.hat is not None:
        draw.chord(
            _box(cx - head_r * 0.95, head_top - head_r * 0.2, cx + head_r * 0.95, head_top + head_r * 1.3),
            180,
            360,
            fill=look.hat,
        )
        draw.rectangle(
            _box(cx, head_top + head_r * 0.45, cx + side * head_r * 1.4, head_top + head_r * 0.62),
            fill=look.hat,
        )


def _draw_pattern(
    draw: ImageDraw.ImageDraw, look: Look, cx: float, y0: float, y1: float, hip_w: float, shoulder_w: float
) -> None:
    inner = hip_w / 2 * 0.92  # stay inside the trapezoid
    if look.pattern == "hstripes":
        step = (y1 - y0) / 7
        for i in range(1, 7, 2):
            draw.rectangle(_box(cx - inner, y0 + i * step, cx + inner, y0 + (i + 1) * step), fill=look.shirt2)
    elif look.pattern == "vstripes":
        step = 2 * inner / 5
        for i in range(1, 5, 2):
            draw.rectangle(_box(cx - inner + i * step, y0, cx - inner + (i + 1) * step, y1), fill=look.shirt2)
    elif look.pattern == "twotone":
        draw.polygon(
            [
                (cx - shoulder_w / 2, y0),
                (cx + shoulder_w / 2, y0),
                (cx + hip_w * 0.45, (y0 + y1) / 2),
                (cx - hip_w * 0.45, (y0 + y1) / 2),
            ],
            fill=look.shirt2,
        )
    elif look.pattern == "logo":
        size = inner * 0.5
        my = y0 + (y1 - y0) * 0.35
        draw.rectangle(_box(cx - size, my - size, cx + size, my + size), fill=look.shirt2)


def _box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _photometric(image: Image.Image, cam: Camera, rng: np.random.Generator) -> Image.Image:
    """Camera light: tint, brightness, contrast and sensor noise, with small per-frame flicker."""
    pixels = np.asarray(image, dtype=np.float32)
    gain = np.array(cam.tint, np.float32) * cam.brightness * float(rng.uniform(0.93, 1.07))
    mean = pixels.mean()
    pixels = (pixels - mean) * cam.contrast + mean
    pixels = pixels * gain + rng.normal(0.0, cam.noise, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
