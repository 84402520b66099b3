"""The typed event that the parser hands to the stitcher.

One `Event` per log record. `kind` names the line shape (one of `kinds.ALL`), the identifiers that
join lines into sessions are attributes, everything else a line carries sits in `data`.
"""

from __future__ import annotations

from typing import Any


class Event:
    """One parsed log record: its shape, identifiers, event time and raw text."""

    __slots__ = (
        "kind",
        "appliance",
        "ts",
        "level",
        "mid",
        "icid",
        "dcid",
        "data",
        "raw",
        "tag",
        "ts_inferred",
        "body_sum",
        "line_key",
    )

    def __init__(
        self,
        kind: str,
        appliance: str,
        ts: float | None,
        level: str | None,
        raw: str,
        mid: int | None = None,
        icid: int | None = None,
        dcid: int | None = None,
        data: dict[str, Any] | None = None,
        tag: str | None = None,
        ts_inferred: bool = False,
        body_sum: int | None = None,
        line_key: bytes | None = None,
    ) -> None:
        self.kind = kind
        self.appliance = appliance
        self.ts = ts
        self.level = level
        self.raw = raw
        self.mid = mid
        self.icid = icid
        self.dcid = dcid
        self.data = data
        self.tag = tag
        self.ts_inferred = ts_inferred
        # Adler-32 of the ESA body (`enricher.core.sessions.session.body_sum`, the duplicate memory's key): set by
        # the native core, which finds the level word anyway; None = computed from `raw` when needed.
        self.body_sum = body_sum
        # Its duplicate-memory key (`sum_key(body_sum, ts)`, 4 bytes), also from the native core: the stitcher
        # needs it for every line and would otherwise make it through a Python call. None: computed there.
        self.line_key = line_key

    def get(self, key: str, default: Any = None) -> Any:
        """Return one field of `data` (None-safe)."""
        d = self.data
        if d is None:
            return default
        return d.get(key, default)

    def __repr__(self) -> str:
        ids = " ".join(
            f"{n}={v}" for n, v in (("mid", self.mid), ("icid", self.icid), ("dcid", self.dcid)) if v is not None
        )
        return f"Event({self.kind} {self.appliance} ts={self.ts} {ids} {self.data!r})"
