"""User-facing errors.

Every problem a user can fix (a missing folder, a bad option, a corrupt file) is raised as
:class:`ReidError` with a one-line message naming the file or option and what to do. The CLI
prints that line and exits non-zero; anything else is a bug and shows a traceback only with
``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReidError(Exception):
    """An error the user can act on; its message is a single line."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during long work, carrying what was kept (``kept``, one phrase).

    ``resumable``: rerunning the same command with ``--resume`` continues from what was kept;
    the CLI prints one line with both.
    """

    def __init__(self, kept: str, *, resumable: bool) -> None:
        super().__init__(kept)
        self.kept = kept
        self.resumable = resumable


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> ReidError:
    """Build the standard error for an unknown model/dataset/recipe name."""
    choices = sorted(choices)
    return ReidError(f"unknown {kind} '{name}'{suggest(name, choices)}; valid: {', '.join(choices)}")
