# cython: annotation_typing=False
"""Session state: one per message (appliance + MID) or per inbound connection (appliance + ICID).

Kept small on purpose (bounded memory is a product promise, ≤ 3 KB per open session): scalar fields in
slots, everything a line adds in one flat `data` dict, the raw lines in ONE string (newline-separated;
a list of strings costs ~60 bytes more per line) with their arrival sequence numbers in a 4-byte array, so
connection and message lines can be merged in arrival order when the document is built.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enricher.core.event import Event

MESSAGE = "message"
CONNECTION = "connection"
DELIVERY = "delivery_connection"  # an outbound DCID: never a document, only joined into messages
_TAGS = {MESSAGE: "m", CONNECTION: "c", DELIVERY: "d"}

# Session states written into documents.
COMPLETE = "complete"  # terminal line seen and the grace period passed
PARTIAL = "partial"  # written at end of input / shutdown without its terminal line
EXPIRED = "expired"  # idle for longer than the horizon; updated in place if more lines arrive
EVICTED = "evicted"  # pushed out by the cap on open sessions
LATE = "late"  # opened by a line of a session written and forgotten (beyond the retention): its own id

Key = tuple[str, str, int]  # (kind tag "m" message / "c" connection / "d" delivery connection, appliance, id)

_SEQ_MASK = 0xFFFFFFFF
# Spreads a line's second over the key's 32 bits (Knuth's multiplicative constant). Multiplying by an odd
# number is a bijection modulo 2**32, so two lines whose keys are equal and whose bodies are equal have the
# same second (modulo 2**32 s, ~136 years): the 4-byte key is as exact as the 8-byte `second, checksum` it
# replaced, once the body is confirmed on the kept raw line (see `Session.repeats`).
_SPREAD = 0x9E3779B1
_adler32 = zlib.adler32
_pack_key = struct.Struct("<I").pack  # a line key: 4 bytes, little-endian


def body_sum(raw: str, level: str | None) -> int:
    """Adler-32 of a line's ESA body, from the level word on (two relays' different syslog headers give the
    same sum). The native core computes the same value while typing a line (`Event.body_sum`)."""
    i = raw.find(level) if level else -1
    body = raw[i:] if i > 0 else raw
    return _adler32(body.encode("utf-8", "surrogatepass"))


def sum_key(body: int, ts: float) -> bytes:
    """The duplicate-memory key of a line from its `body_sum` and event time: 4 bytes little-endian,
    `body ^ (second * _SPREAD mod 2**32)`. Stable across processes (it is durable state)."""
    # It runs for every line. The compiled copy (session.pxd types `ts` and these locals) converts a second in
    # range without a Python integer; `_pack_key` makes the bytes in one call (`int.to_bytes` costs an
    # attribute lookup, a bound method and keyword-free argument parsing more).
    if 0.0 <= ts < 4294967296.0:
        sec = int(ts)
    else:
        sec = int(ts) & _SEQ_MASK
    return _pack_key(body ^ ((sec * _SPREAD) & _SEQ_MASK))


def line_key(raw: str, level: str | None, ts: float) -> bytes:
    """The duplicate-memory key of one line (`sum_key` of its `body_sum`). Adler-32, not CRC-32: four times
    cheaper per line, and a key match is confirmed against the kept raw line before a line counts as a
    duplicate (`Session.repeats`)."""
    return sum_key(body_sum(raw, level), ts)


def _body_sum(ev: Event) -> int:
    """`session.body_sum` of `ev`: the native core's when it typed the line, else computed from its text."""
    b = ev.body_sum
    return body_sum(ev.raw, ev.level) if b is None else b


def _line_key(ev: Event, ts: float) -> bytes:
    """The duplicate-memory key of `ev` at `ts` (`session.line_key`): the native core's when it typed the line
    (its `ts` is then the event's own stamp, which the stitcher uses), else computed."""
    k = ev.line_key
    return sum_key(_body_sum(ev), ts) if k is None else k


def _repeated(s: Session, lk: bytes, ev: Event) -> bool:
    """Whether `ev` (its key `lk`) repeats a line applied to `s` (`Session.repeats`). The keys are scanned
    first: most lines are no copy, and they then cost neither the event's raw line and level (two attribute
    lookups on a Python object) nor the method call."""
    hs = s.hashes
    return hs is not None and _find_key(hs, lk, 0) >= 0 and s.repeats(lk, ev.raw, ev.level)


def key_from_v3(old: bytes) -> bytes:
    """The 4-byte key of a line from its 8-byte key of snapshot version 3 (`second << 32 | Adler-32`,
    little-endian): the same key `line_key` gives that line today."""
    v = int.from_bytes(old, "little")
    return sum_key(v & _SEQ_MASK, v >> 32)


def _find_key(hs: bytes, key: bytes, start: int) -> int:
    """Offset of the first key equal to `key` (4 bytes) in `hs` (keys of 4 bytes, `hs` a bytes-like object)
    from offset `start` (a multiple of 4), or -1. A loop over bytes: compiled, it reads the buffers directly
    (`bytes.find` is a Python method call on every line that may be a copy, and matches at any offset)."""
    if len(key) != 4:  # what the loop reads (None has no length either)
        raise ValueError(f"a line key is 4 bytes, not {key!r}")
    p = hs
    k = key
    n = len(hs)
    i = start
    while i + 4 <= n:
        if p[i] == k[0] and p[i + 1] == k[1] and p[i + 2] == k[2] and p[i + 3] == k[3]:
            return i
        i += 4
    return -1


def _copied(x: Any) -> Any:
    """A copy of JSON-ready data (dicts and lists copied at every level, other values shared)."""
    if type(x) is dict:
        return {k: _copied(v) for k, v in x.items()}
    if type(x) is list:
        return [_copied(v) for v in x]
    return x


def _in_order(sa: array[int], la: list[str], sb: array[int], lb: list[str]) -> list[str]:
    """The lines of both sessions ordered by (sequence, line), i.e. `sorted` of the pairs of both. Each
    session's sequences rise (they are arrival numbers), so one merging pass does; the pairs are sorted
    only when they do not (the 32-bit sequence wrapped)."""
    na = len(sa)
    nb = len(sb)
    i = j = 1
    while i < na and sa[i - 1] < sa[i]:
        i += 1
    while j < nb and sb[j - 1] < sb[j]:
        j += 1
    if i < na or j < nb:
        return [line for _, line in sorted([*zip(sa, la, strict=True), *zip(sb, lb, strict=True)])]
    out = []
    i = j = 0
    while i < na and j < nb:
        if sa[i] < sb[j] or (sa[i] == sb[j] and la[i] <= lb[j]):
            out.append(la[i])
            i += 1
        else:
            out.append(lb[j])
            j += 1
    out.extend(la[i:])
    out.extend(lb[j:])
    return out


class Session:
    """Everything known about one message or connection while it is open."""

    __slots__ = (
        "kind",
        "appliance",
        "ident",
        "key",
        "first_ts",
        "last_ts",
        "data",
        "raw",
        "seqs",
        "conn",
        "mids",
        "finished_ts",
        "closed_ts",
        "lost_ts",
        "state",
        "emitted",
        "unrecognized",
        "bucket",
        "open",
        "nlines",
        "hashes",
        "late",
        "last_kind",
        "ending",
        "written_ts",
    )

    def __init__(self, kind: str, appliance: str, ident: int, ts: float) -> None:
        self.kind = kind
        self.appliance = appliance
        self.ident = ident
        self.key: Key = (_TAGS[kind], appliance, ident)
        self.first_ts = ts
        self.last_ts = ts
        self.data: dict[str, Any] = {}
        self.raw = ""
        self.seqs: array[int] | None = None
        self.conn: Session | None = None
        self.mids: list[int] | None = None
        self.finished_ts: float | None = None
        self.closed_ts: float | None = None
        self.lost_ts: float | None = None
        self.state = ""
        self.emitted = 0  # how many times a document of this session was written
        self.unrecognized = 0
        self.bucket = -1  # the idle-expiry bucket it was last filed under (see Stitcher)
        self.open = False  # held by the stitcher (not closed, not dormant)
        self.nlines = 0  # lines seen, kept or not
        # Keys (`line_key`) of the lines applied, 4 bytes each in arrival order (the duplicate memory). One
        # `bytes` grown by concatenation like `raw`: a `bytearray` costs another object and over-allocates.
        self.hashes: bytes | None = None
        self.late = False  # opened by a line of a session already written and forgotten (see LATE)
        self.last_kind = ""  # kind of its newest line (ties: see merge.later_kind), for an ending never logged
        # How the stitcher closed it without a terminal line (window, its setting, event time of the close);
        # None when closed complete. Set at every close and read when its document is built, so it is not
        # part of the durable state.
        self.ending: dict[str, Any] | None = None
        # Its appliance's clock when its document was last written: a written session is kept for late lines
        # for `closed_retention_seconds` from then (not from its last line: one closed by the idle timeout
        # was idle for the whole timeout already, and would be forgotten as it is written).
        self.written_ts: float | None = None

    def add_line(self, seq: int, line: str) -> None:
        """Remember one raw line and its arrival sequence."""
        self.nlines += 1
        if self.seqs is None:
            self.seqs = array("I")
            self.raw = line
        else:
            self.raw = f"{self.raw}\n{line}"
        self.seqs.append(seq & _SEQ_MASK)

    def view(self) -> Session:
        """A copy of this connection as it is now, for a message that shows it as of its cut (see
        `Joins._shown`); its `conn` is this connection (a connection's own `conn` is None)."""
        v = Session(self.kind, self.appliance, self.ident, self.first_ts)
        v.last_ts = self.last_ts
        v.data = _copied(self.data)  # merge rules update nested dicts and lists in place
        v.raw = self.raw
        v.seqs = None if self.seqs is None else array("I", self.seqs)
        v.conn = self
        v.mids = None if self.mids is None else list(self.mids)
        v.finished_ts = self.finished_ts
        v.closed_ts = self.closed_ts
        v.lost_ts = self.lost_ts
        v.unrecognized = self.unrecognized
        v.nlines = self.nlines
        v.last_kind = self.last_kind
        return v

    def repeats(self, key: bytes, raw: str, level: str | None) -> bool:
        """Whether a line with `key` was already applied here (an exact duplicate: same second, same body).

        A key match is confirmed on the kept raw line when there is one (an Adler-32 collision is not a
        duplicate); without raw lines (`keep_raw` off) the key alone decides.
        """
        hs = self.hashes
        if hs is None:
            return False
        i = _find_key(hs, key, 0)
        if i < 0:
            return False
        lines = self.lines() if self.seqs is not None and len(self.seqs) * 4 == len(hs) else None
        if lines is not None and len(lines) * 4 != len(hs):
            lines = None  # a raw line with a newline inside: the lines no longer align with the keys
        j = raw.find(level) if level else -1
        body = raw[j:] if j > 0 else raw
        while i >= 0:
            if lines is None or lines[i >> 2].endswith(body):
                return True
            i = _find_key(hs, key, i + 4)
        return False

    def lines(self) -> list[str]:
        """This session's own raw lines."""
        return self.raw.split("\n") if self.seqs is not None else []

    def raw_lines(self) -> list[str]:
        """This session's raw lines merged with its connection's, in arrival order."""
        own = self.lines()
        conn = self.conn
        if conn is None or conn is self or conn.seqs is None:
            return own
        theirs = conn.lines()
        if len(theirs) != len(conn.seqs) or len(own) != len(self.seqs or ()):
            return theirs + own  # a raw line with a newline inside (never from the parser): keep all
        if self.seqs is None:
            return _in_order(conn.seqs, theirs, array("I"), own)
        return _in_order(conn.seqs, theirs, self.seqs, own)

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready snapshot (for durable stores); the connection is referenced by its ICID."""
        return {
            "kind": self.kind,
            "appliance": self.appliance,
            "ident": self.ident,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "data": self.data,
            "raw": self.raw,
            "seqs": None if self.seqs is None else list(self.seqs),
            "conn": None if self.conn is None else self.conn.ident,
            "mids": self.mids,
            "finished_ts": self.finished_ts,
            "closed_ts": self.closed_ts,
            "lost_ts": self.lost_ts,
            "state": self.state,
            "emitted": self.emitted,
            "unrecognized": self.unrecognized,
            "nlines": self.nlines,
            "hashes": None if self.hashes is None else self.hashes.hex(),
            "late": self.late,
            "last_kind": self.last_kind,
            "written_ts": self.written_ts,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> tuple[Session, int | None]:
        """Rebuild a session from `to_state`; returns it and the ICID of its connection to re-link."""
        s = cls(st["kind"], st["appliance"], st["ident"], st["first_ts"])
        s.last_ts = st["last_ts"]
        s.data = st["data"]
        s.raw = st["raw"]
        s.seqs = None if st["seqs"] is None else array("I", st["seqs"])
        s.mids = st["mids"]
        s.finished_ts = st["finished_ts"]
        s.closed_ts = st["closed_ts"]
        s.lost_ts = st["lost_ts"]
        s.state = st["state"]
        s.emitted = st["emitted"]
        s.unrecognized = st["unrecognized"]
        s.nlines = st["nlines"]
        hashes = st.get("hashes")  # absent from version 2 snapshots: no duplicate memory before the upgrade
        s.hashes = None if hashes is None else bytes.fromhex(hashes)
        s.late = st.get("late", False)
        s.last_kind = st.get("last_kind", "")  # absent from snapshots written before it existed
        s.written_ts = st.get("written_ts")  # likewise; None: kept from its last line, as those versions did
        return s, st["conn"]
