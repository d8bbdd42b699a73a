"""Built-in synthetic re-ID data in the exact Market-1501 layout (no download needed).

Each identity is a drawn person (head, hair, torso, arms, legs, shoes) whose *identity* shows in
clothing colours, patterns (stripes, two-tone, logo), sleeves/shorts, hat, bag and body shape,
and whose *camera* shows in background colour/texture, brightness/tint, blur, scale and offset.
Every image also gets pose, position and facing jitter. A model has to learn to look at the
person and ignore the camera, which a CPU model does in about a minute, while an untrained one
is fooled by the backgrounds. Everything is deterministic in ``seed``: each image is drawn from
its own random stream keyed by (seed, split, pid, camera, index), so the output does not depend
on the order of generation.

Layout (like Market-1501): ``bounding_box_train/`` (train ids), ``query/`` (one image per test
id per camera), ``bounding_box_test/`` (the other test images, plus distractors ``0000_*`` and
junk ``-1_*``). File names are ``PPPP_cCsS_FFFFFF_BB.jpg``.

Longer than the ~450 lines other modules keep to: drawing a person is one deterministic procedure
(its parts share the per-image random stream), and nothing else imports its pieces.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid_stra.data.images import is_image_file
from reid_stra.errors import ReidError
from reid_stra.utils.atomic import atomic_write_json
from reid_stra.utils.progress import task_progress

SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")
MANIFEST_NAME = "synthetic.json"
MANIFEST_FORMAT = 1
_SUPERSAMPLE = 2  # draw at 2x and downscale: smooth edges at 64x128 for almost no cost
_JPEG_QUALITY = 92
_DISTRACTOR_PID_BASE = 100_000  # random stream keys for distractor looks (never written as ids)
_TRAIN, _QUERY, _GALLERY, _DISTRACTOR, _JUNK = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class _Look:
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
class _Camera:
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


def make_synthetic_dataset(
    root: str | os.PathLike,
    num_train_ids: int = 40,
    num_test_ids: int = 20,
    cameras: int = 4,
    images_per_id_cam: int = 4,
    size: Sequence[int] = (128, 64),
    seed: int = 0,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic Market-1501-layout dataset under ``root`` and return ``root``.

    ``images_per_id_cam`` images are drawn per identity and camera; for test ids one of them
    (per camera) goes to ``query/`` and the rest to ``bounding_box_test/``. ``size`` is
    (height, width). A folder that already holds the same dataset (same parameters, all files
    present) is reused as is; any other non-empty dataset folder needs ``overwrite=True``.
    """
    params = _validated_params(
        num_train_ids, num_test_ids, cameras, images_per_id_cam, size, seed, num_distractors, num_junk
    )
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ReidError(f"{root}: exists and is not a folder; choose a folder for the synthetic dataset")
    if not overwrite and _is_same_dataset(root, params):
        return root
    existing = [name for name in SPLIT_FOLDERS if (root / name).exists()]
    if existing and not overwrite:
        raise ReidError(
            f"{root}: already holds {', '.join(existing)}/ from another dataset; "
            "use --force (overwrite=True) or choose an empty folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    # Draw into a hidden sibling folder and move the finished splits in at the end, so an
    # interrupted run never leaves a half-written dataset that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    try:
        counts = _write_all(staging, params, progress)
        for name in SPLIT_FOLDERS:
            if (root / name).exists():
                shutil.rmtree(root / name)
            os.replace(staging / name, root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_json(root / MANIFEST_NAME, {"format": MANIFEST_FORMAT, "params": params, "counts": counts})
    return root


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The parameters and per-split image counts of a synthetic dataset, or None if absent."""

    path = Path(root) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def synthetic_pids(num_train_ids: int, num_test_ids: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """The original (file-name) ids of the train and test identities, sorted.

    Ids are drawn from 1..(train+test)*2 so they have gaps like real data, which makes the
    training relabelling (sorted ids -> 0..N-1) visible.
    """
    rng = np.random.default_rng([seed, 0])
    total = num_train_ids + num_test_ids
    pool = rng.choice(np.arange(1, 2 * total + 1), size=total, replace=False)
    return sorted(int(p) for p in pool[:num_train_ids]), sorted(int(p) for p in pool[num_train_ids:])


def _validated_params(
    num_train_ids: int,
    num_test_ids: int,
    cameras: int,
    images_per_id_cam: int,
    size: Sequence[int],
    seed: int,
    num_distractors: int | None,
    num_junk: int | None,
) -> dict[str, Any]:
    def check(value: Any, option: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise ReidError(f"{option} {value}: expected an integer from {low} to {high}")
        return int(value)

    if len(size) != 2:
        raise ReidError(f"size {tuple(size)}: expected (height, width)")
    total = check(num_train_ids, "--train-ids", 1, 4999) + check(num_test_ids, "--test-ids", 1, 4999)
    if total > 4999:
        raise ReidError(f"--train-ids + --test-ids = {total}: at most 4999 (ids are 4-digit in file names)")
    if num_distractors is None:
        num_distractors = max(2, num_test_ids // 2)
    if num_junk is None:
        num_junk = max(2, num_test_ids // 4)
    return {
        "num_train_ids": int(num_train_ids),
        "num_test_ids": int(num_test_ids),
        "cameras": check(cameras, "--cameras", 2, 9),
        "images_per_id_cam": check(images_per_id_cam, "--images-per-id-cam", 2, 999),
        "size": [check(size[0], "size height", 16, 1024), check(size[1], "size width", 8, 512)],
        "seed": check(seed, "--seed", 0, 2**32 - 1),
        "num_distractors": check(num_distractors, "num_distractors", 0, 100_000),
        "num_junk": check(num_junk, "num_junk", 0, 100_000),
    }


def _is_same_dataset(root: Path, params: dict[str, Any]) -> bool:
    manifest = read_manifest(root)
    if manifest is None or manifest.get("params") != params:
        return False
    counts = manifest.get("counts", {})
    for name in SPLIT_FOLDERS:
        folder = root / name
        if not folder.is_dir():
            return False
        if sum(1 for entry in os.scandir(folder) if is_image_file(entry.name)) != counts.get(name):
            return False
    return True


def _write_all(out: Path, params: dict[str, Any], progress: bool) -> dict[str, int]:
    """Draw every image of the dataset into ``out``; return the image count per split folder."""
    seed, cameras, per_cam = params["seed"], params["cameras"], params["images_per_id_cam"]
    height, width = params["size"]
    train_pids, test_pids = synthetic_pids(params["num_train_ids"], params["num_test_ids"], seed)
    cams = {c: _camera(seed, c) for c in range(1, cameras + 1)}
    frames = _FrameCounter(seed, cameras)
    jobs: list[tuple[str, int, int, _Look, int, int]] = []  # (folder, pid, cam, look, stream, k)
    for pid in train_pids:
        for cam in range(1, cameras + 1):
            jobs += [("bounding_box_train", pid, cam, _look(seed, pid), _TRAIN, k) for k in range(per_cam)]
    for pid in test_pids:
        for cam in range(1, cameras + 1):
            jobs.append(("query", pid, cam, _look(seed, pid), _QUERY, 0))
            jobs += [
                ("bounding_box_test", pid, cam, _look(seed, pid), _GALLERY, k) for k in range(1, per_cam)
            ]
    extra_rng = np.random.default_rng([seed, 4])
    for j in range(params["num_distractors"]):
        cam = int(extra_rng.integers(1, cameras + 1))
        jobs.append(("bounding_box_test", 0, cam, _look(seed, _DISTRACTOR_PID_BASE + j), _DISTRACTOR, j))
    for j in range(params["num_junk"]):
        cam = int(extra_rng.integers(1, cameras + 1))
        jobs.append(("bounding_box_test", -1, cam, _look(seed, 2 * _DISTRACTOR_PID_BASE + j), _JUNK, j))

    for name in SPLIT_FOLDERS:
        (out / name).mkdir()
    counts = dict.fromkeys(SPLIT_FOLDERS, 0)
    with task_progress("synthetic data", total=len(jobs), unit="img", show=progress) as advance:
        for folder, pid, cam, look, stream, k in jobs:
            rng = np.random.default_rng([seed, stream, pid + 1, cam, k])
            image = _render(look, cams[cam], rng, (height, width), junk=stream == _JUNK)
            image.save(out / folder / frames.name(pid, cam, rng), quality=_JPEG_QUALITY)
            counts[folder] += 1
            advance()
    return counts


class _FrameCounter:
    """Unique, increasing Market-style ``sS_FFFFFF`` frame numbers per camera."""

    def __init__(self, seed: int, cameras: int) -> None:
        rng = np.random.default_rng([seed, 5])
        self._frame = {c: int(rng.integers(100, 5000)) for c in range(1, cameras + 1)}

    def name(self, pid: int, cam: int, rng: np.random.Generator) -> str:
        self._frame[cam] += int(rng.integers(1, 60))
        frame = self._frame[cam]
        sequence = 1 + frame // 200_000
        box = int(rng.integers(1, 4))
        person = "-1" if pid < 0 else f"{pid:04d}"
        return f"{person}_c{cam}s{sequence}_{frame:06d}_{box:02d}.jpg"


def _colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> tuple[int, ...]:
    hue = float(rng.random())
    return _hsv(hue, float(rng.uniform(*sat)), float(rng.uniform(*val)))


def _hsv(hue: float, sat: float, val: float) -> tuple[int, int, int]:

    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _look(seed: int, pid: int) -> _Look:
    rng = np.random.default_rng([seed, 1, pid])
    skin_tone = float(rng.uniform(0.35, 0.95))
    return _Look(
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


def _camera(seed: int, cam: int) -> _Camera:
    rng = np.random.default_rng([seed, 2, cam])
    return _Camera(
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


def _render(
    look: _Look, cam: _Camera, rng: np.random.Generator, size: tuple[int, int], junk: bool = False
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


def _background(cam: _Camera, rng: np.random.Generator, width: int, height: int) -> Image.Image:
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
    look: _Look,
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
    draw: ImageDraw.ImageDraw, look: _Look, cx: float, y0: float, y1: float, hip_w: float, shoulder_w: float
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


def _photometric(image: Image.Image, cam: _Camera, rng: np.random.Generator) -> Image.Image:
    """Camera light: tint, brightness, contrast and sensor noise, with small per-frame flicker."""
    pixels = np.asarray(image, dtype=np.float32)
    gain = np.array(cam.tint, np.float32) * cam.brightness * float(rng.uniform(0.93, 1.07))
    mean = pixels.mean()
    pixels = (pixels - mean) * cam.contrast + mean
    pixels = pixels * gain + rng.normal(0.0, cam.noise, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
