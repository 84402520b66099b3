"""State stores: where open sessions live. One small interface; in-memory here, durable ones elsewhere.

The stitcher mutates `Session` objects in place and calls `touch` after each change, so a durable store
can record which keys changed since its last checkpoint (a changelog) without copying on every line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from enricher.sessions.session import Key, Session


class StateStore(Protocol):
    """Keyed storage of open sessions."""

    def get(self, key: Key) -> Session | None:
        """The session under `key`, or None."""

    def put(self, key: Key, session: Session) -> None:
        """Insert or replace a session."""

    def pop(self, key: Key) -> Session | None:
        """Remove and return a session (None when absent)."""

    def touch(self, key: Key) -> None:
        """Note that the session under `key` changed."""

    def __len__(self) -> int:
        """Number of stored sessions."""

    def values(self) -> Iterator[Session]:
        """All stored sessions (any order)."""


class MemoryStore:
    """A dict. Fast, not durable: the replay path and unit tests use it."""

    def __init__(self) -> None:
        self._d: dict[Key, Session] = {}

    def get(self, key: Key) -> Session | None:
        """The session under `key`, or None."""
        return self._d.get(key)

    def put(self, key: Key, session: Session) -> None:
        """Insert or replace a session."""
        self._d[key] = session

    def pop(self, key: Key) -> Session | None:
        """Remove and return a session (None when absent)."""
        return self._d.pop(key, None)

    def touch(self, key: Key) -> None:
        """Nothing to record for a memory store."""

    def __len__(self) -> int:
        return len(self._d)

    def values(self) -> Iterator[Session]:
        """All stored sessions."""
        return iter(list(self._d.values()))
