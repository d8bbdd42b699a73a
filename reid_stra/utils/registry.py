"""One small name -> entry registry for models and datasets alike (fast-reid's ``Registry``).

A duplicate name is an error at import time (a second reader or model must not silently replace
the first), and an unknown name is the standard one-line error with a suggestion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from reid_stra.errors import unknown_name_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name; ``kind`` ("model", "dataset") names them in errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise unknown_name_error(self.kind, name, self._entries)
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
