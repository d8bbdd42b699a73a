"""The one place images are decoded.

Every command reads person crops through :func:`read_image` so that corrupt, truncated,
oversized or odd-mode files fail the same way: a :class:`ReidError` naming the path.
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from reid_stra.errors import ReidError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Person crops are small; anything above this is a decompression bomb or not a crop.
MAX_PIXELS = 64_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` fully into an RGB PIL image or raise a one-line :class:`ReidError`."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ReidError(f"{path}: image is {img.width}x{img.height}, too large for a person crop")
                img.load()
                return _to_rgb(img)
    except ReidError:
        raise
    except FileNotFoundError:
        raise ReidError(f"{path}: file not found") from None
    except PermissionError:
        raise ReidError(f"{path}: permission denied; check the file's read permissions") from None
    except IsADirectoryError:
        raise ReidError(f"{path}: is a directory, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ReidError(f"{path}: image is too large (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise ReidError(f"{path}: not a readable image (unknown format or empty file)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ReidError(f"{path}: symbolic link loop; point the link at a real image") from None
        raise ReidError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None
    except (SyntaxError, ValueError) as exc:
        raise ReidError(f"{path}: corrupt or truncated image ({_one_line(exc)})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode (L, P, RGBA, CMYK, I;16...) to RGB; alpha is composited on black."""
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return img.point(lambda v: v / 256).convert("L").convert("RGB")
    return img.convert("RGB")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
