"""Person and camera ids of a user's images: from Market-style names, a regex, or a CSV table.

Ids are kept per image: a folder where a few names do not parse still has ids for the others
(``None`` for the rest), so search tables, ranked-list borders and evaluation keep working, and
the caller is told how many did not parse, with examples.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reid_stra.data.datasets import parse_market_name
from reid_stra.errors import ReidError

_SHOW = 2  # example names in the "did not parse" line


@dataclass(frozen=True)
class ParsedIds:
    """Per-image ``pids``/``camids`` (``None`` where unknown), or ``None`` when no image has one."""

    pids: list[int | None] | None
    camids: list[int | None] | None
    unparsed: list[str] = field(default_factory=list)  # paths that got no id

    @property
    def known(self) -> int:
        return 0 if self.pids is None else sum(p is not None for p in self.pids)

    def summary(self, source: str) -> str | None:
        """One line for people when only some images got ids; ``None`` when all (or none) did."""
        if not self.unparsed or self.pids is None:
            return None
        total = len(self.pids)
        examples = ", ".join(os.path.basename(p) for p in self.unparsed[:_SHOW])
        return (
            f"ids: {len(self.unparsed)} of {total} images have no person/camera id in {source} "
            f"(e.g. {examples}); they are shown without one and left out of evaluation "
            "(give --ids FILE.csv or --id-pattern REGEX)"
        )


@dataclass(frozen=True)
class IdSource:
    """Where ids come from: a ``path -> (pid, camid)`` table, else a file-name regex.

    The regex has named groups ``pid`` and ``camid`` and is matched against the file name
    (``re.search``); the default is the Market-1501 / DukeMTMC naming (``0002_c1s1_...``).
    """

    table: Mapping[str, tuple[int, int]] | None = None
    pattern: re.Pattern[str] | None = None
    description: str = "their Market-style file names"

    def parse(self, paths: Sequence[str]) -> ParsedIds:
        pids: list[int | None] = []
        camids: list[int | None] = []
        unparsed: list[str] = []
        for path in paths:
            ids = self._lookup(path)
            if ids is None:
                unparsed.append(path)
            pids.append(None if ids is None else ids[0])
            camids.append(None if ids is None else ids[1])
        if len(unparsed) == len(paths):
            return ParsedIds(None, None, unparsed)
        return ParsedIds(pids, camids, unparsed)

    def _lookup(self, path: str) -> tuple[int, int] | None:
        if self.table is not None:
            full = os.path.abspath(path)
            return self.table.get(full, self.table.get(os.path.basename(full)))
        name = os.path.basename(path)
        if self.pattern is None:
            try:
                return parse_market_name(name)
            except ReidError:
                return None
        match = self.pattern.search(name)
        try:
            if match is None:
                return None
            # A camera-only pattern (``adapt`` needs no person ids) gives pid -1.
            pid = int(match["pid"]) if "pid" in self.pattern.groupindex else -1
            return pid, int(match["camid"])
        except (TypeError, ValueError):  # a group that matched no digits: this image has no id
            return None


def id_source(
    ids_file: str | os.PathLike | None = None,
    id_pattern: str | None = None,
    required: tuple[str, ...] = ("pid", "camid"),
) -> IdSource:
    """The ``IdSource`` for ``--ids FILE.csv`` / ``--id-pattern REGEX`` (both absent: Market names).

    ``required``: the named groups the pattern must have (``("camid",)`` where only cameras matter).
    """
    if ids_file is not None and id_pattern is not None:
        raise ReidError("--ids and --id-pattern: give one of them (the table or the file-name pattern)")
    if ids_file is not None:
        return IdSource(table=read_id_table(ids_file), description=f"--ids {ids_file}")
    if id_pattern is not None:
        compiled = compile_id_pattern(id_pattern, required)
        return IdSource(pattern=compiled, description=f"--id-pattern {id_pattern!r}")
    return IdSource()


def compile_id_pattern(pattern: str, required: tuple[str, ...] = ("pid", "camid")) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ReidError(f"--id-pattern {pattern!r}: not a valid regular expression ({exc})") from None
    missing = [name for name in required if name not in compiled.groupindex]
    if missing:
        groups = " and ".join(f"(?P<{name}>...)" for name in required)
        raise ReidError(
            f"--id-pattern {pattern!r}: needs the named group(s) {groups}, "
            f"e.g. 'id(?P<pid>\\d+)_cam(?P<camid>\\d+)'; missing {', '.join(missing)}"
        )
    return compiled


def read_id_table(ids_file: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``path,pid,camid`` rows (a header row is allowed) -> ``{absolute path: (pid, camid)}``.

    Relative paths are relative to the CSV's folder; a bare file name also matches that name in
    any folder, which is what a table written for a flat folder of crops needs.
    """
    path = Path(ids_file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReidError(f"--ids {path}: cannot read ({reason}); give a CSV of path,pid,camid rows") from None
    table: dict[str, tuple[int, int]] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 3:
            raise ReidError(f"--ids {path}: line {number} has {len(row)} columns; each row is path,pid,camid")
        name, pid_text, camid_text = (cell.strip() for cell in row)
        try:
            ids = int(pid_text), int(camid_text)
        except ValueError:
            if number == 1:  # a header such as "path,pid,camid"
                continue
            raise ReidError(
                f"--ids {path}: line {number}: pid and camid must be integers "
                f"(got {pid_text!r}, {camid_text!r})"
            ) from None
        key = name if os.sep not in name and "/" not in name else os.path.abspath(path.parent / name)
        table[key] = ids
    if not table:
        raise ReidError(f"--ids {path}: no path,pid,camid rows found")
    return table
