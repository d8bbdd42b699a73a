"""Turn the user's INPUT... (images, folders, globs, text lists of paths) into a list of images.

The result is sorted and de-duplicated so that the same inputs always give the same row order
(which is what lets ``--resume`` trust finished chunks). Folders are walked without following
symbolic links to folders, so a link loop cannot hang us; names that are not valid UTF-8 or
that contain spaces are kept as they are.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from reid_stra.data.images import IMAGE_EXTENSIONS, is_image_file
from reid_stra.errors import ReidError

_GLOB_CHARS = set("*?[")


def expand_inputs(inputs: Sequence[str | os.PathLike], option: str = "INPUT") -> list[str]:
    """Absolute paths of every image named by ``inputs`` (sorted, unique).

    Each input is an image file, a folder (searched recursively; hidden files and folders are
    skipped), a glob (``'crops/**/*.jpg'``) or a text file listing one path per line (blank
    lines and ``#`` comments ignored; relative paths are relative to the list file's folder).
    """
    if not inputs:
        raise ReidError(f"{option}: give at least one image, folder, glob or text file of paths")
    found: list[str] = []
    for raw in inputs:
        found.extend(_expand_one(os.fspath(raw), option))
    unique = sorted({os.path.abspath(p) for p in found})
    if not unique:
        shown = " ".join(os.fspath(i) for i in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        raise ReidError(
            f"{option} {shown}: no images found (looked for {', '.join(_extensions())} files); "
            "check the paths"
        )
    return unique


def _expand_one(raw: str, option: str) -> list[str]:
    path = Path(raw)
    if path.is_dir():
        return list(_walk_images(path))
    if path.is_file():
        return [raw] if is_image_file(raw) else _read_path_list(path, option)
    if _GLOB_CHARS & set(raw):
        matches = sorted(glob.glob(raw, recursive=True))
        if not matches:
            raise ReidError(f"{option} {raw}: the glob matches nothing; check the pattern")
        images: list[str] = []
        for match in matches:
            if os.path.isdir(match):
                images.extend(_walk_images(Path(match)))
            elif is_image_file(match):
                images.append(match)
        return images
    raise ReidError(
        f"{option} {raw}: no such file or folder (give image files, folders, globs or a text file of paths)"
    )


def _walk_images(root: Path) -> Iterable[str]:
    def skip_unreadable(error: OSError) -> None:
        raise ReidError(f"{error.filename}: cannot list folder ({error.strerror}); check its permissions")

    for folder, subfolders, files in os.walk(root, followlinks=False, onerror=skip_unreadable):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if not name.startswith(".") and is_image_file(name):
                yield os.path.join(folder, name)


def _read_path_list(list_file: Path, option: str) -> list[str]:
    """One path per line; listed folders are expanded, missing files kept (reported when read)."""
    try:
        data = list_file.read_bytes()
    except OSError as exc:
        raise ReidError(f"{list_file}: cannot read ({exc.strerror}); check its permissions") from None
    if b"\0" in data[:8192]:
        raise ReidError(
            f"{option} {list_file}: neither an image ({', '.join(_extensions())}) nor a text file of paths"
        )
    base = list_file.parent
    paths: list[str] = []
    for line in data.decode("utf-8", errors="surrogateescape").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entry_path = Path(entry) if os.path.isabs(entry) else base / entry
        if entry_path.is_dir():
            paths.extend(_walk_images(entry_path))
        else:
            paths.append(os.fspath(entry_path))
    return paths


def _extensions() -> list[str]:

    return list(IMAGE_EXTENSIONS)
