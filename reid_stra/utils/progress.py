"""Progress bars for long library operations (training, extraction, evaluation).

Library code reports progress through :func:`task_progress`; bars go to stderr so that
``--json`` output on stdout stays machine-readable. ``set_progress_enabled(False)`` (or the
environment variable ``REID_STRA_NO_PROGRESS=1``) silences them, e.g. in tests.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_enabled = os.environ.get("REID_STRA_NO_PROGRESS", "") in ("", "0")
_stderr = Console(stderr=True)


def set_progress_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


class _RateColumn(ProgressColumn):
    """Items per second with the task's unit (img/s, batch/s, q/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


Advance = Callable[..., None]


@contextlib.contextmanager
def task_progress(
    description: str, total: int | None, unit: str = "it", *, show: bool = True
) -> Iterator[Advance]:
    """Yield ``advance(n=1, info="")``; shows a bar with count, rate, elapsed time and ETA
    (``show=False``: a silent one, for callers asked for no progress)."""
    if not (_enabled and show):
        yield lambda n=1, info="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=_stderr, transient=False) as progress:
        task_id = progress.add_task(description, total=total, unit=unit, info="")

        def advance(n: int = 1, info: str = "") -> None:
            progress.update(task_id, advance=n, info=info)

        yield advance
