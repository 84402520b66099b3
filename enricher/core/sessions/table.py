# cython: annotation_typing=False
"""The session tables of the stitcher (pure; no I/O): open, dormant and written sessions, their windows
(grace, idle timeout, eviction), closing and reviving, the duplicate memory. `SessionTable` is the base of
`Joins` and `Stitcher` (stitcher.py documents the whole); its state is declared in table.pxd."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

from enricher.core.event import Event
from enricher.core.sessions.expiry import ExpiryIndex
from enricher.core.sessions.merge import DCID_RULES
from enricher.core.sessions.session import (
    COMPLETE,
    CONNECTION,
    DELIVERY,
    EVICTED,
    EXPIRED,
    LATE,
    MESSAGE,
    Key,
    Session,
    _repeated,
)
from enricher.core.sessions.settings import StitchConfig, StitchStats

# A session's first line: for a key already written with another first second, the counter was reused.
_START_KINDS = frozenset(("start_mid", "new_icid"))
_DELIVERY_KINDS = frozenset(("delivery_start", "message_done", "bounced", "delayed", "possible_delivery"))
_DCID_KINDS = frozenset(DCID_RULES) | {"dcid_close", "dcid_other"}
# What `Stitcher._reopen` answers for a duplicate line: a session that no key names.
_DUPLICATE = Session(DELIVERY, "", 0, 0.0)


# The StitchConfig field that sets each closing window (named as such in the evidence).
_WINDOW_SETTINGS = {"idle_timeout": "idle_timeout_seconds", "eviction": "max_open_sessions"}


def _add_child(s: Session, value: dict[str, object]) -> None:
    """A child MID link on its parent's session (a reinjection releases the parent from quarantine)."""
    kids = s.data.setdefault("children", [])
    if value not in kids:
        kids.append(value)
    if value.get("relation") == "reinjected":
        s.data.setdefault("quarantine", {})["status"] = "released"


class SessionTable:
    """Where sessions live between their lines: the open ones by key, their windows, the written ones kept for
    late lines. Holds the stitcher's whole state (fields set by `Stitcher.__init__`)."""

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
        # Per appliance, what the grace period closes, due time → keys, and a heap of those due times: a
        # terminal line late within the grace period is due before lines scheduled ahead of it (a queue in
        # arrival order would hold it back behind them). Handled in (due, key) order. Not one heap of
        # (due, key) pairs: most share a due time (stamps are seconds), so its sifting compared key tuples.
        self._grace: dict[str, dict[float, list[Key]]] = {}
        self._grace_dues: dict[str, list[float]] = {}
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
        # Called with the sessions a line's clock advance closed, before that line is applied (the pipeline
        # builds their documents there: as of their closing, not as the closing line leaves their connection).
        self.before_apply: Callable[[list[Session]], None] | None = None

    def _ordered(self) -> list[Session]:
        return sorted(self._open.values(), key=lambda s: (s.first_ts, s.appliance, s.kind, s.ident))

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
        if _repeated(s, lk, ev):
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
        key = s.key
        if key in digests:  # a test, not `pop(key, None)`: a method call for every written session
            del digests[key]
        digests[key] = int(s.first_ts)
        while len(digests) > self.config.max_closed_digests:
            digests.popitem(False)  # the oldest; positional (a keyword argument costs its parsing)

    def _revive(self, s: Session, ts: float) -> None:
        """Bring a written session back (dormant: expired or quarantined; or kept closed); it is written
        again, same id, with everything it had and the new lines."""
        key = s.key
        if self._dormant.pop(key, None) is None:
            del self._closed[key]
        rest = [x for x in self._out if x is not s]
        if len(rest) != len(self._out):
            # Closed by this very line's clock advance: take the closing back (its document, built early by
            # `before_apply`, is not written); the session closes again later, once.
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

    def _apply(self, c: Session, lk: bytes, raw: str) -> None:
        """Remember a line applied to a connection (or delivery) session: its key, and its text if kept."""
        self._session_lines += 1
        hs = c.hashes
        c.hashes = lk if hs is None else hs + lk
        if self._keep_raw:
            c.add_line(self._seq, raw)
        else:
            c.nlines += 1

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
        """`key` is due for closing (if its ending still holds then) at `ts` plus the grace period."""
        self._due_at(app, ts + self.config.grace_seconds, key)

    def _due_at(self, app: str, due: float, key: Key) -> None:
        q = self._grace.get(app)
        if q is None:
            q = self._grace[app] = {}
            self._grace_dues[app] = []
        keys = q.get(due)
        if keys is None:
            q[due] = [key]
            heappush(self._grace_dues[app], due)
        else:
            keys.append(key)

    def _advance(self, app: str, wm: float) -> None:
        q = self._grace.get(app)
        if q:
            dues = self._grace_dues[app]
            while dues and dues[0] <= wm:
                keys = q.pop(heappop(dues))
                if len(keys) > 1:
                    keys.sort()
                for key in keys:
                    s = self._open.get(key)
                    if s is None:
                        continue
                    if s.kind == MESSAGE:
                        fin = s.finished_ts
                        if fin is None:
                            continue
                        # Written L (the grace period) after its cut, `fin + grace` (`Joins._shown`): every line of
                        # its connection stamped before the cut has come by then, late or not, so it is written
                        # once. A due time above the clock is safe here: this loop stops at the clock.
                        wait = fin + 2 * self.config.grace_seconds
                        if s.conn is not None and wm < wait:
                            self._due_at(app, wait, key)
                        else:
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
            key = s.key
            if key in closed:  # a reused counter: the newer session takes the key (and the newest place)
                del closed[key]
            closed[key] = s
            while len(closed) > self.config.max_closed_sessions:
                self._forget(closed.popitem(False)[1])
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
