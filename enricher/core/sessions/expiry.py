# cython: annotation_typing=False
"""Idle-expiry index: sessions filed in one-minute buckets of their last event time, per appliance.

Cheaper than an LRU list on the hot path (a session is re-filed at most once per minute of activity, not
on every line) and it answers both questions the stitcher asks: "which sessions have been idle since
before T?" (expiry) and "which are the least recently active?" (eviction under the memory cap). Entries
go stale when a session moves on or closes; they are skipped when their bucket is read.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from enricher.core.sessions.session import Session

BUCKET_SECONDS = 60


class ExpiryIndex:
    """Buckets of sessions by last activity, for one appliance."""

    __slots__ = ("_buckets", "_heap", "_entries", "_compact_at")

    def __init__(self) -> None:
        self._buckets: dict[int, deque[Session]] = {}
        self._heap: list[int] = []
        self._entries = 0
        self._compact_at = 4096

    def file(self, s: Session) -> None:
        """(Re-)file a session under the bucket of its `last_ts` when that changed."""
        b = int(s.last_ts) // BUCKET_SECONDS
        if b != s.bucket:
            s.bucket = b
            q = self._buckets.get(b)
            if q is None:
                q = self._buckets[b] = deque()
                heapq.heappush(self._heap, b)
            q.append(s)
            self._entries += 1
            if self._entries > self._compact_at:
                self._compact()

    def _compact(self) -> None:
        """Drop stale entries (sessions that closed or moved on), so closed sessions are not kept alive."""
        kept = 0
        for b in list(self._buckets):
            q = deque(x for x in self._buckets[b] if x.open and x.bucket == b)
            if q:
                self._buckets[b] = q
                kept += len(q)
            else:
                del self._buckets[b]
        self._heap = sorted(self._buckets)
        self._entries = kept
        self._compact_at = max(4096, 2 * kept)

    def idle_before(self, horizon: float) -> Iterator[Session]:
        """Open sessions whose last activity is before `horizon` (whole buckets, oldest first); removes them."""
        limit = int(horizon) // BUCKET_SECONDS
        heap, buckets = self._heap, self._buckets
        while heap and heap[0] < limit:
            b = heapq.heappop(heap)
            q = buckets.pop(b)
            self._entries -= len(q)
            for s in q:
                if s.open and s.bucket == b:
                    yield s

    def oldest(self) -> Iterator[Session]:
        """Open sessions from the least recently active on (for eviction); consumes what it yields."""
        heap, buckets = self._heap, self._buckets
        while heap:
            b = heap[0]
            q = buckets[b]
            while q:
                s = q.popleft()
                self._entries -= 1
                if s.open and s.bucket == b:
                    s.bucket = -1
                    yield s
            heapq.heappop(heap)
            del buckets[b]

    def __len__(self) -> int:
        return sum(len(q) for q in self._buckets.values())

    def items(self) -> list[Session]:
        """Live entries in bucket order (for snapshots)."""
        return [s for b in sorted(self._buckets) for s in self._buckets[b] if s.open and s.bucket == b]
