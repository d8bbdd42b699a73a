"""The one shape of the callback through which library code tells the user something.

Library functions never print: they take ``notice: Notice`` (a line of text, no newline) and the
CLI passes its ``info``; the default drops the line.
"""

from __future__ import annotations

from collections.abc import Callable

Notice = Callable[[str], None]


def silent(_message: str) -> None:
    """The default notice: say nothing."""
