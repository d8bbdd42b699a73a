"""How commands print: rich tables for people, ``--json`` for scripts, errors on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Piped or redirected output (a log file, `| cat`, `| grep`) is never wrapped: rich would cut
# names and messages at 80 columns. A terminal keeps its own width; COLUMNS still wins.
_UNWRAPPED_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    wide = not _is_terminal(stream) and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=_UNWRAPPED_WIDTH if wide else None)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


PROGRESS_ENV = "REID_STRA_NO_PROGRESS"


def progress_wanted() -> bool:
    """Progress bars on stderr unless ``REID_STRA_NO_PROGRESS=1`` (the documented switch for logs
    and test suites); read here, once per command, and passed to the library as ``progress``."""
    return os.environ.get(PROGRESS_ENV, "") in ("", "0")


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (plain print: rich would wrap long lines)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    _console(stderr=False).print(table)


def info(message: str) -> None:
    """A status line for people; goes to stderr so stdout stays clean for --json."""
    _console(stderr=True).print(printable(message), highlight=False)


def error(message: str) -> None:
    """The one-line ``error: ...`` every failure ends with (never wrapped, even on a terminal)."""
    text = f"[bold red]error:[/] {escape(printable(message))}"  # a path like "[1].jpg" is not markup
    _console(stderr=True).print(text, highlight=False, soft_wrap=True)


def printable(text: str) -> str:
    """``text`` with file-name bytes that are not UTF-8 shown as U+FFFD (a terminal cannot take them)."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else printable(str(value))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
