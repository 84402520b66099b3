"""Session state: one per message (appliance + MID) or per inbound connection (appliance + ICID).

Kept small on purpose (bounded memory is a product promise, ≤ 3 KB per open session): scalar fields in
slots, everything a line adds in one flat `data` dict, raw lines in a list with their arrival sequence
numbers in a compact array so connection and message lines can be merged in order at the end.
"""

from __future__ import annotations

from array import array
from typing import Any

MESSAGE = "message"
CONNECTION = "connection"
DELIVERY = "delivery_connection"  # an outbound DCID: never a document, only joined into messages
_TAGS = {MESSAGE: "m", CONNECTION: "c", DELIVERY: "d"}

# Session states written into documents.
COMPLETE = "complete"  # terminal line seen and the grace period passed
PARTIAL = "partial"  # written at end of input / shutdown without its terminal line
EXPIRED = "expired"  # idle for longer than the horizon; updated in place if more lines arrive
EVICTED = "evicted"  # pushed out by the cap on open sessions

Key = tuple[str, str, int]  # (kind tag "m" message / "c" connection / "d" delivery connection, appliance, id)


class Session:
    """Everything known about one message or connection while it is open."""

    __slots__ = (
        "kind",
        "appliance",
        "ident",
        "first_ts",
        "last_ts",
        "data",
        "lines",
        "seqs",
        "conn",
        "mids",
        "finished_ts",
        "closed_ts",
        "lost_ts",
        "state",
        "emitted",
        "unrecognized",
    )

    def __init__(self, kind: str, appliance: str, ident: int, ts: float) -> None:
        self.kind = kind
        self.appliance = appliance
        self.ident = ident
        self.first_ts = ts
        self.last_ts = ts
        self.data: dict[str, Any] = {}
        self.lines: list[str] = []
        self.seqs = array("Q")
        self.conn: Session | None = None
        self.mids: list[int] | None = None
        self.finished_ts: float | None = None
        self.closed_ts: float | None = None
        self.lost_ts: float | None = None
        self.state = ""
        self.emitted = 0  # how many times a document of this session was written
        self.unrecognized = 0

    @property
    def key(self) -> Key:
        """The state-store key of this session."""
        return (_TAGS[self.kind], self.appliance, self.ident)

    def add_line(self, seq: int, raw: str, keep_raw: bool) -> None:
        """Remember one raw line (when raw lines are kept) and its arrival sequence."""
        if keep_raw:
            self.lines.append(raw)
            self.seqs.append(seq)

    def raw_lines(self) -> list[str]:
        """This session's raw lines merged with its connection's, in arrival order."""
        conn = self.conn
        if conn is None or not conn.lines:
            return list(self.lines)
        merged = sorted(
            [(s, line) for s, line in zip(conn.seqs, conn.lines, strict=False)]
            + [(s, line) for s, line in zip(self.seqs, self.lines, strict=False)]
        )
        return [line for _, line in merged]

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready snapshot (for durable stores); the connection is referenced by its ICID."""
        return {
            "kind": self.kind,
            "appliance": self.appliance,
            "ident": self.ident,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "data": self.data,
            "lines": self.lines,
            "seqs": list(self.seqs),
            "conn": None if self.conn is None else self.conn.ident,
            "mids": self.mids,
            "finished_ts": self.finished_ts,
            "closed_ts": self.closed_ts,
            "lost_ts": self.lost_ts,
            "state": self.state,
            "emitted": self.emitted,
            "unrecognized": self.unrecognized,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> tuple[Session, int | None]:
        """Rebuild a session from `to_state`; returns it and the ICID of its connection to re-link."""
        s = cls(st["kind"], st["appliance"], st["ident"], st["first_ts"])
        s.last_ts = st["last_ts"]
        s.data = st["data"]
        s.lines = st["lines"]
        s.seqs = array("Q", st["seqs"])
        s.mids = st["mids"]
        s.finished_ts = st["finished_ts"]
        s.closed_ts = st["closed_ts"]
        s.lost_ts = st["lost_ts"]
        s.state = st["state"]
        s.emitted = st["emitted"]
        s.unrecognized = st["unrecognized"]
        return s, st["conn"]
