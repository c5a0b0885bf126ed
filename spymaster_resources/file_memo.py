"""Values computed from files, kept in the process while the files are unchanged.

A date-order walk reads the same earlier partitions day after day (the trailing window of the class
mix, of the blend, of the daily ATR). :class:`FileMemo` computes a value once per identity of its
files (``lake_paths.file_identity``: a rewritten or replaced file is read again), so each partition
costs one read per process however many days use it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from .lake_paths import LakePath, file_identity

T = TypeVar("T")


class FileMemo(Generic[T]):
    """``get(paths, compute, tag)`` returns ``compute()``, computed once per (tag, each path and its
    identity). ``retain_used()`` drops the entries not asked for since its last call (a window that
    slides by one session a day keeps only its own); with ``max_entries``, the oldest entry goes when
    a new one would pass it. Raises FileNotFoundError (from ``file_identity``) when a path does not exist."""

    def __init__(self, max_entries: int | None = None) -> None:
        self._entries: dict[tuple, T] = {}
        self._used: set[tuple] = set()
        self._max_entries = max_entries

    def get(self, paths: Sequence[LakePath], compute: Callable[[], T], tag: Hashable = None) -> T:
        key = (tag, *((str(p), *file_identity(p)) for p in paths))
        self._used.add(key)
        if key not in self._entries:
            value = compute()
            if self._max_entries is not None and len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = value
        return self._entries[key]

    def retain_used(self) -> None:
        self._entries = {key: value for key, value in self._entries.items() if key in self._used}
        self._used = set()

    def __len__(self) -> int:
        return len(self._entries)
