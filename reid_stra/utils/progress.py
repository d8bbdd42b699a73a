"""Progress bars for long library operations (training, extraction, evaluation).

Library code reports progress through :func:`task_progress`; bars go to stderr so that
``--json`` output on stdout stays machine-readable. When stderr is not a terminal (nohup, tee,
CI, Slurm logs) a bar would only be drawn at the end, so plain lines are printed instead, as
torchreid and fast-reid do: one at the first step, then at every tenth of the total (or every
``PLAIN_EVERY`` items when the total is unknown), with count, rate, elapsed time, ETA and the
task's latest info (the trainer's loss). Whether to show them is the caller's choice
(``show``; the library functions take ``progress``): this module keeps no switch of its own.
"""

from __future__ import annotations

import contextlib
import sys
import time
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

_stderr = Console(stderr=True)


class _RateColumn(ProgressColumn):
    """Items per second with the task's unit (img/s, batch/s, q/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


Advance = Callable[..., None]
PLAIN_STEPS = 10  # lines per task when the total is known
PLAIN_EVERY = 1000  # items between lines when it is not


class _PlainLines:
    """Progress as plain log lines (for a stderr that is a file or a pipe)."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done, self.info, self.lines = 0, "", 0
        self.started = time.perf_counter()

    def __call__(self, n: int = 1, info: str = "") -> None:
        if info:
            self.info = info
        if not n:
            return
        before, self.done = self.done, self.done + n
        if self.total:
            step = self.total / PLAIN_STEPS
            due = before == 0 or int(before / step) != int(self.done / step) or self.done >= self.total
        else:
            due = before == 0 or before // PLAIN_EVERY != self.done // PLAIN_EVERY
        if due:
            self._print()

    def _print(self) -> None:
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        parts = [f"{self.description}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts.append(f"{rate:,.1f} {self.unit}/s" if rate else f"- {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and rate:
            parts.append(f"eta {_clock(max(0.0, (self.total - self.done) / rate))}")
        if self.info:
            parts.append(self.info)
        print(", ".join(parts), file=sys.stderr, flush=True)
        self.lines += 1


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


@contextlib.contextmanager
def task_progress(
    description: str, total: int | None, unit: str = "it", *, show: bool = True
) -> Iterator[Advance]:
    """Yield ``advance(n=1, info="")``; shows a bar with count, rate, elapsed time and ETA
    (``show=False``: a silent one, for callers asked for no progress)."""
    if not show:
        yield lambda n=1, info="": None
        return
    if not _stderr.is_terminal:
        yield _PlainLines(description, total, unit)
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
