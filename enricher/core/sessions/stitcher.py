# cython: annotation_typing=False
"""The stitcher: joins events into sessions in event time (pure; no I/O).

- Message sessions are keyed by appliance + MID; connection lines (ICID) and delivery connections (DCID)
  are joined to them through per-appliance ICID and DCID records.
- A message closes `grace_seconds` of event time after `Message finished` (late lines such as an
  `ICID lost` written after the abort still make it in); a connection closes the same way after
  `ICID close` (the pipeline decides whether it deserves a document of its own).
- Sessions idle for `idle_timeout_seconds` (to the minute) are written as `expired` partial documents and
  kept dormant: a later line revives them and they are written again under the same id (updated in place).
  Quarantined messages stay dormant too, so a release, deletion or reinjection rewrites them.
- Every other written session is kept as well, for `closed_retention_seconds` of event time and up to
  `max_closed_sessions` (`_closed`): a late line revives it the same way (merged, reclassified, same id); a
  late connection line also rewrites the messages it carried. A session forgotten from either store leaves
  its key (`_digests`, up to `max_closed_digests`): a line for it opens a session of its own written as
  `late`, with its own id, never the old one. See docs/decisions/late-lines.md.
- `max_open_sessions` bounds memory: the least recently active sessions are written as `evicted`.
- An exact duplicate of a line already applied to a session (same appliance, second and ESA body: two relays,
  an at-least-once forwarder, a file read twice) changes nothing; it is counted in `stats.duplicates`. Each
  session keeps 4 bytes per line for this (`Session.hashes`, durable with the rest of its state).
- Event time advances per appliance (its watermark: the newest stamp seen); `tick(now)` moves quiet
  appliances forward on processing time so their last sessions still close.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from enricher.core.event import Event
from enricher.core.parsing.shapes import HEADER_KINDS, SYSTEM_KINDS
from enricher.core.sessions.expiry import BUCKET_SECONDS, ExpiryIndex
from enricher.core.sessions.merge import CONNECTION_RULES, DCID_RULES, MESSAGE_RULES, later_kind
from enricher.core.sessions.session import (
    COMPLETE,
    CONNECTION,
    DELIVERY,
    EVICTED,
    EXPIRED,
    LATE,
    MESSAGE,
    PARTIAL,
    Key,
    Session,
    body_sum,
    sum_key,
)

# A session's first line: for a key already written with another first second, the counter was reused.
_START_KINDS = frozenset(("start_mid", "new_icid"))
_DELIVERY_KINDS = frozenset(("delivery_start", "message_done", "bounced", "delayed", "possible_delivery"))
_DCID_KINDS = frozenset(DCID_RULES) | {"dcid_close", "dcid_other"}
# Message line kinds that need more than their merge rule (see Stitcher._on_message).
_FOLLOW_UP_KINDS = _DELIVERY_KINDS | {
    "split",
    "rewritten",
    "generated",
    "generated_bounce",
    "reinjected",
    "message_finished",
    "mid_unrecognized",
}
# What `Stitcher._reopen` answers for a duplicate line: a session that no key names.
_DUPLICATE = Session(DELIVERY, "", 0, 0.0)
_ICID_ZERO_KINDS = frozenset(("hat", "delayed_hat_reject", "receiving_failed", "icid_disconnected"))


def _body_sum(ev: Event) -> int:
    """`session.body_sum` of `ev`: the native core's when it typed the line, else computed from its text."""
    b = ev.body_sum
    return body_sum(ev.raw, ev.level) if b is None else b


def _line_key(ev: Event, ts: float) -> bytes:
    """The duplicate-memory key of `ev` at `ts` (`session.line_key`)."""
    return sum_key(_body_sum(ev), ts)


# Connection lines that may end the connection with a failure of its own (docs/abort-taxonomy.md §2): each
# records which message was being received at that moment (see Stitcher._mark_in_flight).
_FAILURE_KINDS = frozenset(
    (
        "hat",
        "delayed_hat_reject",
        "receiving_failed",
        "icid_disconnected",
        "icid_tls",
        "icid_tls_required",
        "smtp_auth",
        "connection_killed",
    )
)  # and DHAP drops, which name no ICID (Stitcher._on_dhap)


# The StitchConfig field that sets each closing window (named as such in the evidence).
_WINDOW_SETTINGS = {"idle_timeout": "idle_timeout_seconds", "eviction": "max_open_sessions"}


@dataclass(frozen=True)
class StitchConfig:
    """Windowing settings of the stitcher (all durations in seconds of event time)."""

    grace_seconds: float = 5.0
    idle_timeout_seconds: float = 3600.0
    max_open_sessions: int = 200_000
    max_dormant_sessions: int = 20_000
    dormant_horizon_seconds: float = 7 * 86400.0
    closed_retention_seconds: float | None = None  # None: the idle timeout
    max_closed_sessions: int = 10_000
    max_closed_digests: int = 100_000
    quiet_seconds: float = 60.0
    keep_raw: bool = True


@dataclass
class StitchStats:
    """Counters the stitcher keeps (exported as metrics and in the replay summary). `system`, `uncorrelated`,
    `icid_zero` and `delivery_connection` count lines that are in no document, each once (see
    `Stitcher.line_outcomes`); `unrecognized` counts lines of unrecognised shape, in a session or not."""

    system: int = 0  # appliance-level lines and file headers
    unrecognized: int = 0
    icid_zero: int = 0  # `ICID 0 …` lines other than the HAT outcomes that make a document of their own
    uncorrelated: int = 0  # lines that name no session they could join
    delivery_connection: int = 0  # outbound `DCID n …` lines: their facts go into the messages' deliveries
    # Lines of delivery connections (`New SMTP DCID`, `DCID n TLS …`, `Connection Error: DCID n`, `DCID n close`):
    # folded into the documents of the messages delivered on that connection (their data, not their raw
    # lines), or, when no message of the input was delivered on it, in no document at all (counted here).
    # Both are known once the connection's record is dropped; `delivery_connection` counts them on arrival.
    dcid_in_messages: int = 0
    dcid_unmatched: int = 0
    opened: int = 0
    revived: int = 0
    duplicates: int = 0
    closed: dict[str, int] = field(default_factory=dict)

    def closed_as(self, state: str) -> None:
        """Count one session written with `state`."""
        self.closed[state] = self.closed.get(state, 0) + 1


def _add_child(s: Session, value: dict[str, object]) -> None:
    """A child MID link on its parent's session (a reinjection releases the parent from quarantine)."""
    kids = s.data.setdefault("children", [])
    if value not in kids:
        kids.append(value)
    if value.get("relation") == "reinjected":
        s.data.setdefault("quarantine", {})["status"] = "released"


class Stitcher:
    """Feeds events into sessions; returns the sessions that are ready to be written."""

    def __init__(self, config: StitchConfig | None = None) -> None:
        self.config = config or StitchConfig()
        self._keep_raw = self.config.keep_raw
        self._max_open = self.config.max_open_sessions  # both read for every line
        self.stats = StitchStats()
        self.appliances: dict[str, dict[str, str]] = {}
        self._open: dict[Key, Session] = {}
        self._seq = 0
        self._watermark: dict[str, float] = {}
        self._arrival: dict[str, float] = {}
        self._expiry: dict[str, ExpiryIndex] = {}
        # Per appliance, a heap of (due, key): a terminal line late within the grace period is due before
        # lines scheduled ahead of it (a queue in arrival order would hold it back behind them).
        self._grace: dict[str, list[tuple[float, Key]]] = {}
        self._dormant: OrderedDict[Key, Session] = OrderedDict()
        self._closed: OrderedDict[Key, Session] = OrderedDict()  # written, kept for late lines (close order)
        self._digests: OrderedDict[Key, int] = OrderedDict()  # forgotten: key → first second
        retention = self.config.closed_retention_seconds
        self._retention = self.config.idle_timeout_seconds if retention is None else retention
        self._by_ip: dict[tuple[str, str], int] = {}
        # DHAP lines that found no connection for their IP, written alone unless that connection's late
        # `New SMTP ICID` arrives within their grace period (see _adopt_dhap): (appliance, IP) → their keys.
        self._dhap_waiting: dict[tuple[str, str], list[Key]] = {}
        self._pending_links: dict[Key, dict[str, object]] = {}
        # Children links for a parent not seen yet: its lines may arrive later (late within the grace period).
        self._pending_children: dict[Key, list[dict[str, object]]] = {}
        self._out: list[Session] = []
        self._session_lines = 0  # lines applied to a message or connection session (see line_outcomes)

    # -- public API ---------------------------------------------------------------------------------------
    def feed(self, ev: Event, now: float | None = None) -> list[Session]:
        """Add one event; return the sessions it closed (complete, expired or evicted). The list is valid
        until the next call (an empty one is reused: most lines close nothing)."""
        out = self._out
        if out:
            out = self._out = []
        self._seq += 1
        app = ev.appliance
        wm = self._watermark.get(app)
        ts = ev.ts
        if ts is None:
            ts = wm if wm is not None else 0.0
        if now is not None:
            self._arrival[app] = now
        kind = ev.kind
        # File-header lines are stamped before their own `Time offset from UTC` applies: not a clock reading.
        if (wm is None or ts > wm) and kind not in HEADER_KINDS:
            self._watermark[app] = ts
            # Close what is due first: a line later than a session's grace period does not join it.
            self._advance(app, ts)
        mid = ev.mid
        if mid is not None:
            if kind in MESSAGE_RULES:
                self._on_message(ev, ts, app, kind, mid)
            else:
                self.stats.uncorrelated += 1
        elif ev.icid is not None and kind in CONNECTION_RULES:
            if ev.icid == 0:
                self._on_icid_zero(ev, ts)
            else:
                self._on_connection(ev, ts)
        elif ev.dcid is not None and kind in _DCID_KINDS:
            self._on_delivery_connection(ev, ts)
        elif kind in SYSTEM_KINDS:
            self.stats.system += 1
            if kind == "log_version" and ev.data:
                self.appliances.setdefault(app, {}).update(ev.data)
        elif kind == "dhap_drop":
            self._on_dhap(ev, ts)
        elif kind != "unparsed":
            self.stats.uncorrelated += 1
        if len(self._open) > self._max_open:
            self._evict(app)
        return out

    def feed_all(self, events: Iterable[Event]) -> list[Session]:
        """Feed many events, then flush; returns every session written (for tests and small inputs)."""
        done: list[Session] = []
        for ev in events:
            done.extend(self.feed(ev))
        done.extend(self.flush())
        return done

    def tick(self, now: float) -> list[Session]:
        """Processing-time fallback: close what is due on appliances quiet for `quiet_seconds`."""
        out = self._out = []
        for app, arrived in list(self._arrival.items()):
            quiet = now - arrived
            if quiet > self.config.quiet_seconds and app in self._watermark:
                self._advance(app, self._watermark[app] + quiet)
        return out

    def _ordered(self) -> list[Session]:
        return sorted(self._open.values(), key=lambda s: (s.first_ts, s.appliance, s.kind, s.ident))

    def flush(self) -> list[Session]:
        """End of input: write every open session (complete if finished, else partial)."""
        out = self._out = []
        shared: dict[str, dict[str, Any]] = {}
        idle: dict[str, dict[str, Any]] = {}
        timeout = self.config.idle_timeout_seconds
        for s in self._ordered():
            finished = s.finished_ts if s.kind == MESSAGE else s.closed_ts
            if s.kind == DELIVERY:
                self._drop(s)
            elif finished is not None:
                self._close(s, COMPLETE, None, False)
            else:
                wm = self._watermark.get(s.appliance, s.last_ts)
                if wm - s.last_ts > timeout:
                    # Already idle past its timeout on its appliance's clock, though no later line moved that
                    # clock since it was filed (a session opened by a line older than the timeout, or a
                    # restart that read its last lines again): the idle timeout closed it, as the sweep would
                    # have; which lines came after it must not decide how it ended.
                    self._close(s, EXPIRED, self._window(idle, s, "idle_timeout", wm), False)
                else:
                    self._close(s, PARTIAL, self._window(shared, s, "end_of_input"), False)
        return out

    def drain(self) -> list[Session]:
        """Batch end of a service run: finished sessions close; unfinished ones are written as partial
        but stay open, so later lines update them in place (same id)."""
        out = self._out = []
        shared: dict[str, dict[str, Any]] = {}
        for s in self._ordered():
            finished = s.finished_ts if s.kind == MESSAGE else s.closed_ts
            if s.kind != DELIVERY and finished is not None:
                self._close(s, COMPLETE)
            elif s.kind == MESSAGE or (s.kind == CONNECTION and not s.mids):
                s.state = LATE if s.late else PARTIAL
                s.ending = self._window(shared, s, "batch_end")
                s.emitted += 1
                self.stats.closed_as(s.state)
                out.append(s)
        return out

    def line_outcomes(self) -> dict[str, int]:
        """Where the lines fed so far went, each line counted exactly once: `session` (in a message or
        connection session, hence in its document) or the reason it is in no document. The pipeline adds its
        error documents; the sum is its `lines` (tests/unit/test_accounting.py). A new way for a line to end
        gets its entry here, and nowhere else."""
        st = self.stats
        return {
            "session": self._session_lines,
            "system": st.system,
            "uncorrelated": st.uncorrelated,
            "icid_zero": st.icid_zero,
            "delivery_connection": st.delivery_connection,
            "duplicates": st.duplicates,  # a repeat of a line already applied: changes nothing
        }

    def open_sessions(self) -> int:
        """Number of open message and connection sessions (and delivery connection records)."""
        return len(self._open)

    def get(self, key: Key) -> Session | None:
        """An open session by key (tests, diagnostics)."""
        return self._open.get(key)

    def held(self, key: Key) -> Session | None:
        """A session by key still in memory: open, or written and kept (closed or dormant) for late lines."""
        return self._open.get(key) or self._closed.get(key) or self._dormant.get(key)

    # -- routing ------------------------------------------------------------------------------------------
    def _hold(self, s: Session) -> None:
        """Start holding a session as open."""
        s.open = True
        self._open[s.key] = s

    def _file(self, s: Session) -> None:
        idx = self._expiry.get(s.appliance)
        if idx is None:
            idx = self._expiry[s.appliance] = ExpiryIndex()
        idx.file(s)

    def _on_message(self, ev: Event, ts: float, app: str, kind: str, mid: int) -> None:
        key: Key = ("m", app, mid)
        lk = _line_key(ev, ts)
        s = self._open.get(key)
        if s is None:
            s = self._reopen(key, ts, kind, lk, ev)
            if s is _DUPLICATE:
                return
            if s is None:
                s = Session(MESSAGE, app, mid, ts)
                if self._digests:
                    s.late = self._was_forgotten(key, ts, kind)
                self.stats.opened += 1
                link = self._pending_links.pop(key, None)
                if link is not None:
                    s.data["parent"] = link
                if self._pending_children:
                    for kid in self._pending_children.pop(key, ()):
                        _add_child(s, kid)
                self._hold(s)
        elif ts <= s.last_ts and s.repeats(lk, ev.raw, ev.level):  # a duplicate is never later than the session
            self.stats.duplicates += 1
            return
        MESSAGE_RULES[kind](s, ev)
        self._apply(s, lk, ev.raw)
        # Its expiry bucket can change only when its clock moves or when it is not filed yet (new, revived):
        # the bucket arithmetic at the end is skipped for the other lines (most of them).
        # Its newest line is what an ending never logged reports (`last_kind`).
        if ts > s.last_ts:
            s.last_ts = ts
            s.last_kind = kind
            refile = True
        else:
            refile = s.bucket < 0
            if ts == s.last_ts:
                if later_kind(kind, s.last_kind):
                    s.last_kind = kind
            elif ts < s.first_ts and not s.emitted:
                # An earlier line that arrived late: the session starts at its stamp (so does the id, until
                # a document is written under it), as if the lines had come in order.
                s.first_ts = ts
        icid = ev.icid
        if icid is not None and s.conn is None:
            if icid == 0:
                s.data["generated_by_appliance"] = True
            else:
                conn = self._connection(app, icid, ts)
                if not conn.nlines and ts < conn.first_ts and not conn.emitted:
                    # Only message lines named it so far: it spans the earliest of them, whichever came first.
                    conn.first_ts = conn.last_ts = ts
                s.conn = conn
                if conn.mids is None:
                    conn.mids = []
                if mid not in conn.mids:
                    conn.mids.append(mid)
        if kind in _FOLLOW_UP_KINDS:  # one set test keeps the common lines off this chain
            if ev.dcid is not None and kind in _DELIVERY_KINDS:
                self._join_delivery(s, ev, ts)
            elif kind == "split" or kind == "rewritten":
                self._link(app, ev.get("child"), "parent", {"mid": mid, "relation": kind})
            elif kind == "generated" or kind == "generated_bounce" or kind == "reinjected":
                rel = s.data.get("parent", {}).get("relation", kind)
                self._link(app, ev.get("parent"), "children", {"mid": mid, "relation": rel})
            elif kind == "message_finished":
                self._schedule(app, ts, key)
            elif kind == "mid_unrecognized":
                self.stats.unrecognized += 1
        if refile and s.bucket != int(s.last_ts) // BUCKET_SECONDS:
            self._file(s)

    def _recall(self, key: Key, ts: float, kind: str) -> Session | None:
        """The written session (dormant or kept closed) that a `kind` line of `key` at `ts` would revive;
        it stays where it is until `_revive`."""
        s = self._dormant.get(key)
        if s is not None:
            if ts - s.last_ts > self.config.dormant_horizon_seconds:
                del self._dormant[key]
                self._forget(s)
                return None
            return s
        s = self._closed.get(key)
        if s is None:
            return None
        written = s.written_ts
        if self._watermark.get(s.appliance, ts) - (s.last_ts if written is None else written) > self._retention:
            del self._closed[key]
            self._forget(s)
            return None
        if kind in _START_KINDS and int(ts) != int(s.first_ts):
            return None  # the counter was reused: a new session (a copy of its first line has its second)
        return s

    def _reopen(self, key: Key, ts: float, kind: str, lk: bytes, ev: Event) -> Session | None:
        """For a line of a key not open: the written session it revives, `_DUPLICATE` when it repeats one
        of that session's lines (counted; nothing changes), or None."""
        s = self._recall(key, ts, kind)
        if s is None:
            return None
        if s.repeats(lk, ev.raw, ev.level):
            self.stats.duplicates += 1
            return _DUPLICATE
        self._revive(s, ts)
        return s

    def _was_forgotten(self, key: Key, ts: float, kind: str) -> bool:
        """Whether a new session of `key` continues one written and forgotten (it is then written as late)."""
        first = self._digests.get(key)
        if first is None or (kind in _START_KINDS and int(ts) != first):
            return False
        del self._digests[key]  # the late session is remembered on its own from now on
        return True

    def _forget(self, s: Session) -> None:
        """A written session leaves memory: keep its key, so a late line for it is not taken for a new one."""
        if s.kind == CONNECTION and s.data.get("source_ip"):
            # Kept while the connection is (a DHAP line repeated after it closed is found through it).
            ipkey = (s.appliance, s.data["source_ip"])
            if self._by_ip.get(ipkey) == s.ident:
                del self._by_ip[ipkey]
        if s.kind == DELIVERY or self.config.max_closed_digests <= 0:
            return
        digests = self._digests
        digests.pop(s.key, None)
        digests[s.key] = int(s.first_ts)
        while len(digests) > self.config.max_closed_digests:
            digests.popitem(last=False)

    def _revive(self, s: Session, ts: float) -> None:
        """Bring a written session back (dormant: expired or quarantined; or kept closed); it is written
        again, same id, with everything it had and the new lines."""
        key = s.key
        if self._dormant.pop(key, None) is None:
            del self._closed[key]
        rest = [x for x in self._out if x is not s]
        if len(rest) != len(self._out):
            # Closed by this very line's clock advance: its document is not built yet and would show the
            # state after this line. Take the closing back; the session closes again later, once.
            self._out[:] = rest  # in place: feed() returns this list
            s.emitted -= 1
            self.stats.closed[s.state] -= 1
        else:
            self.stats.revived += 1
        s.state = ""
        s.bucket = -1
        self._hold(s)
        self._file(s)
        if (s.finished_ts if s.kind == MESSAGE else s.closed_ts) is not None:
            self._schedule(s.appliance, ts, key)

    def _revive_messages(self, c: Session, ts: float) -> None:
        """A late line of a written connection: its written messages are written again too (their
        classification reads the connection: an `ICID lost` turns an unexplained abort into connection_lost)."""
        for mid in c.mids or ():
            m = self._closed.get(("m", c.appliance, mid))
            if m is not None and m.conn is c:
                self._revive(m, ts)

    def _link(self, app: str, other_mid: int | None, field_name: str, value: dict[str, object]) -> None:
        """Record a parent/child MID link on the other session too (open, dormant, or not yet seen)."""
        if other_mid is None:
            return
        key: Key = ("m", app, other_mid)
        other = self._open.get(key)
        if other is None:
            wm = self._watermark.get(app, 0.0)
            other = self._recall(key, wm, "")
            if other is not None:
                self._revive(other, wm)
        if other is None:
            # Its own lines come later (a child's; or a parent's, arriving late): attach the link when its
            # session opens.
            if field_name == "parent":
                pending: dict[Key, Any] = self._pending_links
                pending[key] = value
            else:
                pending = self._pending_children
                kids = pending.setdefault(key, [])
                if value not in kids:
                    kids.append(value)
            while len(pending) > self.config.max_dormant_sessions:
                pending.pop(next(iter(pending)))
            return
        if field_name == "parent":
            other.data["parent"] = value
        else:
            _add_child(other, value)

    def _join_delivery(self, s: Session, ev: Event, ts: float) -> None:
        key: Key = ("d", ev.appliance, ev.dcid)  # type: ignore[assignment]
        rec = self._open.get(key)
        if rec is None:
            # Its `New SMTP DCID` line may still come, late within the grace period: an empty record waits
            # for it that long (dropped then if nothing came, see _advance) and copies it in when it does.
            rec = Session(DELIVERY, ev.appliance, ev.dcid, ts)  # type: ignore[arg-type]
            self._hold(rec)
            self._schedule(ev.appliance, ts, key)
        if rec.mids is None:
            rec.mids = []
        if s.ident not in rec.mids and len(rec.mids) < 200:
            rec.mids.append(s.ident)
        self._copy_delivery(rec, s)

    def _copy_delivery(self, rec: Session, s: Session) -> None:
        deliveries = s.data.get("deliveries")
        d = deliveries.get(str(rec.ident)) if deliveries else None
        if d is None:
            return
        info = rec.data.get("dcid")
        if info:
            for k, v in info.items():
                d.setdefault(k, v)
        tls = rec.data.get("tls")
        if tls:
            d["tls"] = tls
        err = rec.data.get("connection_error")
        if err:
            d["connection_error"] = err

    def _connection(self, app: str, icid: int, ts: float) -> Session:
        key: Key = ("c", app, icid)
        c = self._open.get(key)
        if c is None:
            c = self._recall(key, ts, "")
            if c is not None:
                self._revive(c, ts)
                return c
            c = Session(CONNECTION, app, icid, ts)
            if self._digests:
                c.late = self._was_forgotten(key, ts, "")
            self._hold(c)
            self._file(c)
            self.stats.opened += 1
        return c

    def _on_connection(self, ev: Event, ts: float) -> None:
        app, icid, kind = ev.appliance, ev.icid, ev.kind
        key: Key = ("c", app, icid)  # type: ignore[assignment]
        lk = _line_key(ev, ts)
        old = self._open.get(key)
        if old is None:
            old = self._reopen(key, ts, kind, lk, ev)
            if old is _DUPLICATE:
                return
            if old is not None:
                self._revive_messages(old, ts)
        elif ts <= old.last_ts and old.repeats(lk, ev.raw, ev.level):
            self.stats.duplicates += 1
            return
        if kind == "new_icid" and old is not None and "start_ts" in old.data:
            # The ICID counter was reused (or the close was lost): finish the old connection first. One
            # without its own `New SMTP ICID` line yet is not finished: this is that line, arriving late
            # (after lines written in the same second, even after its close).
            if old.closed_ts is not None:
                self._close(old, COMPLETE)
            else:
                self._close(old, PARTIAL, self._window({}, old, "icid_reused", ts))
        c = self._open.get(key)
        if c is None:
            c = Session(CONNECTION, app, icid, ts)  # type: ignore[arg-type]
            if self._digests:
                c.late = self._was_forgotten(key, ts, kind)
            self._hold(c)
            self._file(c)
            self.stats.opened += 1
        fresh = not c.nlines  # no line of its own yet (opened by a message line, or just now)
        CONNECTION_RULES[kind](c, ev)
        self._apply(c, lk, ev.raw)
        if kind == "icid_other":
            self.stats.unrecognized += 1
        elif kind in _FAILURE_KINDS:
            self._mark_in_flight(c)
        if ts > c.last_ts or fresh:  # its own first line sets its clock, even before the message lines'
            if ts < c.first_ts and not c.emitted:
                c.first_ts = ts
            c.last_ts = ts
            c.last_kind = kind
        elif ts == c.last_ts:
            if later_kind(kind, c.last_kind):
                c.last_kind = kind
        elif ts < c.first_ts and not c.emitted:
            c.first_ts = ts  # an earlier line that arrived late (see _on_message)
        if kind == "new_icid":
            source_ip = ev.get("source_ip")
            if source_ip:
                self._by_ip[(app, source_ip)] = icid  # type: ignore[assignment]
                if self._dhap_waiting:
                    self._adopt_dhap(c, ts, self._dhap_waiting.pop((app, source_ip), None))
        elif kind == "icid_close":
            self._schedule(app, ts, key)
        if c.bucket != int(c.last_ts) // BUCKET_SECONDS:
            self._file(c)

    def _apply(self, c: Session, lk: bytes, raw: str) -> None:
        """Remember a line applied to a connection (or delivery) session: its key, and its text if kept."""
        self._session_lines += 1
        hs = c.hashes
        c.hashes = lk if hs is None else hs + lk
        if self._keep_raw:
            c.add_line(self._seq, raw)
        else:
            c.nlines += 1

    def _standalone(self, ev: Event, ts: float, lk: bytes) -> Session | None:
        """A connection document made of one line that names no usable ICID (ICID 0, uncorrelated DHAP);
        None when that line is a duplicate of one already held.

        Its id must not depend on where a replay starts, nor on the relay: a negative number from the line's
        key (second and ESA body), and its rank among held lines whose numbers collide.
        """
        # The number is from the line's second and body sum as 8 bytes (the line key before keys were 4 bytes):
        # documents are written by id, so a version change must not give a held line another one.
        base = zlib.crc32(((int(ts) & 0xFFFFFFFF) << 32 | _body_sum(ev)).to_bytes(8, "little"))
        app = ev.appliance
        for n in range(64):
            key: Key = ("c", app, -(base * 64 + n) - 1)
            held = self._open.get(key) or self._closed.get(key)
            if held is None:
                break
            if held.repeats(lk, ev.raw, ev.level):
                self.stats.duplicates += 1
                return None
        c = Session(CONNECTION, app, key[2], ts)
        c.closed_ts = ts
        self._hold(c)
        self._file(c)
        self.stats.opened += 1
        self._schedule(app, ts, c.key)
        return c

    def _on_icid_zero(self, ev: Event, ts: float) -> None:
        """ICID 0 is never a join key; its HAT lines (`ICID 0 TCPREFUSE …`) are outcomes of their own."""
        if ev.kind not in _ICID_ZERO_KINDS:
            self.stats.icid_zero += 1
            return
        lk = _line_key(ev, ts)
        c = self._standalone(ev, ts, lk)
        if c is None:
            return
        c.last_kind = ev.kind
        CONNECTION_RULES[ev.kind](c, ev)
        self._apply(c, lk, ev.raw)

    def _on_dhap(self, ev: Event, ts: float) -> None:
        """DHAP lines name an IP, not an ICID: join the latest open connection from that IP."""
        ip = ev.get("source_ip")
        icid = self._by_ip.get((ev.appliance, ip)) if ip else None
        c = self._open.get(("c", ev.appliance, icid)) if icid is not None else None
        lk = _line_key(ev, ts)
        held = c if c is not None or icid is None else self._closed.get(("c", ev.appliance, icid))
        if held is not None and held.repeats(lk, ev.raw, ev.level):
            self.stats.duplicates += 1
            return
        if c is None:
            c = self._standalone(ev, ts, lk)
            if c is None:
                return
            c.data["source_ip"] = ip
            if ip:
                self._dhap_waiting.setdefault((ev.appliance, ip), []).append(c.key)
        else:
            self._mark_in_flight(c)
        if ts > c.last_ts:
            c.last_ts = ts
            c.last_kind = ev.kind
            if c.bucket != int(ts) // BUCKET_SECONDS:
                self._file(c)
        elif ts == c.last_ts and later_kind(ev.kind, c.last_kind):
            c.last_kind = ev.kind
        CONNECTION_RULES["dhap_drop"](c, ev)
        self._apply(c, lk, ev.raw)

    def _adopt_dhap(self, c: Session, ts: float, waiting: list[Key] | None) -> None:
        """A connection's `New SMTP ICID` (at `ts`) that arrives after DHAP lines for its IP written no earlier:
        they are its own, late within their grace period. Each joins it as if it had come in order, and its
        one-line document (not written yet) is no more."""
        for key in waiting or ():
            g = self._open.get(key)
            if g is None or g.emitted or g.first_ts < ts:
                continue  # written already, or older than the connection: not its DHAP line
            self._open.pop(key)
            g.open = False
            self.stats.opened -= 1
            c.data["dhap_drop"] = g.data["dhap_drop"]
            hs = c.hashes
            c.hashes = bytearray(g.hashes or b"") if hs is None else hs + (g.hashes or b"")
            if g.seqs is None:
                c.nlines += g.nlines
            else:
                for seq, line in zip(g.seqs, g.lines(), strict=True):
                    c.add_line(seq, line)
            if g.first_ts > c.last_ts:
                c.last_ts = g.first_ts
                c.last_kind = "dhap_drop"
                if c.bucket != int(c.last_ts) // BUCKET_SECONDS:
                    self._file(c)
            elif g.first_ts == c.last_ts and later_kind("dhap_drop", c.last_kind):
                c.last_kind = "dhap_drop"
            self._mark_in_flight(c)

    def _on_delivery_connection(self, ev: Event, ts: float) -> None:
        key: Key = ("d", ev.appliance, ev.dcid)  # type: ignore[assignment]
        if ev.kind == "dcid_close":
            self.stats.delivery_connection += 1
            rec = self._open.get(key)
            if rec is not None:
                # Dropped once the grace period has passed: a `DCID n TLS …` line may arrive after the close.
                rec.nlines += 1
                rec.closed_ts = ts
                self._schedule(ev.appliance, ts, key)
            else:
                self.stats.dcid_unmatched += 1
            return
        if ev.kind == "dcid_other":
            self.stats.delivery_connection += 1
            self.stats.unrecognized += 1
            rec = self._open.get(key)
            if rec is not None:
                rec.nlines += 1  # counted with its connection's lines when that is dropped
            else:
                self.stats.dcid_unmatched += 1
            return
        rec = self._open.get(key)
        lk = _line_key(ev, ts)
        if rec is None:
            rec = Session(DELIVERY, ev.appliance, ev.dcid, ts)  # type: ignore[arg-type]
            self._hold(rec)
        elif rec.repeats(lk, ev.raw, ev.level):
            self.stats.duplicates += 1
            return
        self.stats.delivery_connection += 1
        DCID_RULES[ev.kind](rec, ev)
        hs = rec.hashes
        rec.hashes = lk if hs is None else hs + lk
        rec.nlines += 1
        rec.last_ts = ts
        for mid in rec.mids or ():
            msg = self._open.get(("m", ev.appliance, mid))  # type: ignore[arg-type]
            if msg is not None:
                self._copy_delivery(rec, msg)
        self._file(rec)

    def _mark_in_flight(self, c: Session) -> None:
        """At a line that may be the connection's own failure, record the message it was receiving (still
        open, not yet `ready`), or that there was none: what the stream showed at that line, which only the
        stitcher sees. The classifier decides from it and the messages (`classify.connections.was_receiving`:
        a `ready` arriving after the failure line, out of order, means received after all)."""
        mids = c.mids
        m = self._open.get(("m", c.appliance, mids[-1])) if mids else None
        if m is not None and "ready_ts" not in m.data:
            c.data["in_flight_mid"] = m.ident
        else:
            c.data.pop("in_flight_mid", None)

    # -- closing ------------------------------------------------------------------------------------------
    def _schedule(self, app: str, ts: float, key: Key) -> None:
        q = self._grace.get(app)
        if q is None:
            q = self._grace[app] = []
        heappush(q, (ts + self.config.grace_seconds, key))

    def _advance(self, app: str, wm: float) -> None:
        q = self._grace.get(app)
        while q and q[0][0] <= wm:
            _, key = heappop(q)
            s = self._open.get(key)
            if s is None:
                continue
            if s.kind == MESSAGE:
                if s.finished_ts is not None:
                    self._close(s, COMPLETE)
            elif s.kind == DELIVERY:
                if s.closed_ts is not None or not s.nlines:  # closed, or waited for its lines in vain
                    self._drop(s)
            elif s.closed_ts is not None:
                self._close(s, COMPLETE)
        closed = self._closed
        while closed:  # forget what is older than the retention (close order: the oldest come first)
            s = next(iter(closed.values()))
            written = s.written_ts
            if self._watermark.get(s.appliance, wm) - (s.last_ts if written is None else written) <= self._retention:
                break
            del closed[s.key]
            self._forget(s)
        idx = self._expiry.get(app)
        if idx is None:
            return
        shared: dict[str, dict[str, Any]] = {}
        for s in list(idx.idle_before(wm - self.config.idle_timeout_seconds)):
            if s.last_ts >= wm - self.config.idle_timeout_seconds:
                self._file(s)  # active again within its bucket's minute: keep it
            elif s.kind == DELIVERY:
                self._drop(s)
            else:
                self._close(s, EXPIRED, self._window(shared, s, "idle_timeout", wm))

    def _evict(self, app: str) -> None:
        idx = self._expiry.get(app)
        if idx is None or not len(idx):
            idx = max(self._expiry.values(), key=len)
        oldest = idx.oldest()
        shared: dict[str, dict[str, Any]] = {}
        while len(self._open) > self.config.max_open_sessions:
            s = next(oldest, None)
            if s is None:
                break
            if s.kind == DELIVERY:
                self._drop(s)
            else:
                self._close(s, EVICTED, self._window(shared, s, "eviction"))

    def _drop(self, s: Session) -> None:
        self._open.pop(s.key, None)
        s.open = False
        if s.kind == DELIVERY:
            if s.mids:
                self.stats.dcid_in_messages += s.nlines
            else:
                self.stats.dcid_unmatched += s.nlines
            s.nlines = 0

    def _window(
        self, shared: dict[str, dict[str, Any]], s: Session, window: str, at: float | None = None
    ) -> dict[str, Any]:
        """What closed `s` without its terminal line: the window, its setting, the event time (`at`, else its
        appliance's clock). Read-only and shared by the sessions of one appliance closed together (`shared`):
        a flush closes every open session at once, and a record each would add ~200 bytes per session."""
        e = shared.get(s.appliance)
        if e is None:
            e = {"closed_by": window, "at": at if at is not None else self._watermark.get(s.appliance, s.last_ts)}
            setting = _WINDOW_SETTINGS.get(window)
            if setting is not None:
                e[setting] = getattr(self.config, setting)
            shared[s.appliance] = e
        return e

    def _close(self, s: Session, state: str, ending: dict[str, Any] | None = None, keep: bool = True) -> None:
        """Write `s` with `state`; `ending` says which window closed it when that was not its own ending.
        `keep` False (end of input: no line can follow) keeps it neither for late lines nor as a digest."""
        self._drop(s)
        if self._dhap_waiting and "dhap_drop" in s.data:
            self._unwait(s)
        s.state = LATE if s.late else state
        s.ending = ending
        s.written_ts = self._watermark.get(s.appliance, s.last_ts)
        s.emitted += 1
        self.stats.closed_as(s.state)
        self._out.append(s)
        if s.kind == MESSAGE and (
            state == EXPIRED or (s.data.get("quarantine") or {}).get("status") in ("quarantined", "tagged")
        ):
            self._dormant[s.key] = s
            while len(self._dormant) > self.config.max_dormant_sessions:
                self._forget(self._dormant.popitem(last=False)[1])
        elif not keep:
            return
        elif self._retention > 0 and self.config.max_closed_sessions > 0:
            closed = self._closed
            closed.pop(s.key, None)  # a reused counter: the newer session takes the key
            closed[s.key] = s
            while len(closed) > self.config.max_closed_sessions:
                self._forget(closed.popitem(last=False)[1])
        else:
            self._forget(s)

    def _unwait(self, s: Session) -> None:
        """A DHAP line's own document is written: no connection adopts it any more."""
        ipkey = (s.appliance, s.data.get("source_ip"))
        waiting = self._dhap_waiting.get(ipkey)  # type: ignore[arg-type]
        if waiting is not None and s.key in waiting:
            waiting.remove(s.key)
            if not waiting:
                del self._dhap_waiting[ipkey]  # type: ignore[arg-type]

    # -- durable state --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole windowed state as JSON-ready data (durable checkpoints of the streaming service)."""
        from enricher.core.sessions.state import snapshot

        return snapshot(self)

    def restore(self, snap: dict[str, Any]) -> None:
        """Load a `snapshot()` into this (empty) stitcher."""
        from enricher.core.sessions.state import restore

        restore(self, snap)
