# cython: annotation_typing=False
"""The stitcher: joins events into sessions in event time (pure; no I/O).

- Message sessions are keyed by appliance + MID; connection lines (ICID) and delivery connections (DCID)
  are joined to them through per-appliance ICID and DCID records.
- A message's lines and its connection's lines stamped up to `grace_seconds` of event time after its
  `Message finished` (its cut) are in its document (late lines such as an `ICID lost` written after the abort
  still make it in), whatever order they arrive in; one with a connection is written `grace_seconds` after the
  cut, when all of those have come (`Joins._shown`). A connection closes `grace_seconds` after `ICID close`
  (the pipeline decides whether it deserves a document of its own).
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
- The class is split by subject (each module under ~400 lines, one compiled layout per class): `SessionTable`
  (table.py: where sessions live, their windows, closing and reviving), `Joins` (joins.py: connection, DHAP and
  delivery-connection lines) and `Stitcher` (this module: the entry points and message lines).
- Event time advances per appliance (its watermark: the newest stamp seen); `tick(now)` moves quiet
  appliances forward on processing time so their last sessions still close.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from enricher.core.event import Event
from enricher.core.parsing.shapes import HEADER_KINDS, SYSTEM_KINDS
from enricher.core.sessions.expiry import BUCKET_SECONDS
from enricher.core.sessions.joins import Joins
from enricher.core.sessions.merge import CONNECTION_RULES, MESSAGE_RULES, later_kind
from enricher.core.sessions.session import (
    COMPLETE,
    CONNECTION,
    DELIVERY,
    EXPIRED,
    LATE,
    MESSAGE,
    PARTIAL,
    Key,
    Session,
    _line_key,
    _repeated,
)
from enricher.core.sessions.settings import StitchConfig, StitchStats
from enricher.core.sessions.table import (
    _DCID_KINDS,
    _DELIVERY_KINDS,
    _DUPLICATE,
    _add_child,
)

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


__all__ = ["StitchConfig", "StitchStats", "Stitcher", "remembered_by"]  # the settings classes are imported from here


def remembered_by(ev: Event) -> Key | None:
    """The session whose duplicate memory would hold a line like `ev`: a stamped message or connection line
    (the lines `Stitcher.repeated` can answer for; DCID, DHAP, ICID 0 and system lines: None)."""
    if ev.ts is None or ev.ts_inferred:
        return None
    if ev.mid is not None:
        return ("m", ev.appliance, ev.mid) if ev.kind in MESSAGE_RULES else None
    if ev.icid and ev.kind in CONNECTION_RULES:
        return ("c", ev.appliance, ev.icid)
    return None


class Stitcher(Joins):
    """Feeds events into sessions; returns the sessions that are ready to be written."""

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
            if out and self.before_apply is not None:
                # Their documents are built now, as of their closing (whichever line showed it: one late
                # within the grace period must not change them). A session this line revives leaves `out`
                # (`_revive`), and its early document is not written.
                self.before_apply(out)
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

    def repeated(self, ev: Event) -> bool:
        """Whether `ev` is an exact duplicate of a line applied to a session still held (open, kept or
        dormant): asked by the pipeline of the head of a join the parser made (`Parser.loose_joins`)."""
        key = remembered_by(ev)
        s = self.held(key) if key is not None else None
        return s is not None and s.repeats(_line_key(ev, ev.ts), ev.raw, ev.level)  # type: ignore[arg-type]

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
        elif ts <= s.last_ts and _repeated(s, lk, ev):  # a duplicate is never later than the session
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
                    if conn.mids:  # its other messages show it as of their cut (Joins._shown)
                        views = self._shown(conn, ts, False)
                        if views is not None:
                            for v in views:
                                if v.mids is not None:  # a copy of a connection with messages: always
                                    v.mids.append(mid)
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
                # Due when it is written (SessionTable._advance): a grace period after its cut if it has a
                # connection (one heap entry, not one at the cut and another after it).
                self._schedule(app, ts if s.conn is None else ts + self.config.grace_seconds, key)
            elif kind == "mid_unrecognized":
                self.stats.unrecognized += 1
        if refile and s.bucket != int(s.last_ts) // BUCKET_SECONDS:
            self._file(s)

    # -- durable state --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole windowed state as JSON-ready data (durable checkpoints of the streaming service)."""
        from enricher.core.sessions.state import snapshot

        return snapshot(self)

    def restore(self, snap: dict[str, Any]) -> None:
        """Load a `snapshot()` into this (empty) stitcher."""
        from enricher.core.sessions.state import restore

        restore(self, snap)
