# cython: annotation_typing=False
"""Connection, DHAP and delivery-connection lines joined to the message sessions they concern (pure; no I/O).
`Joins` sits between `SessionTable` and `Stitcher` (stitcher.py documents the whole)."""

from __future__ import annotations

import zlib

from enricher.core.event import Event
from enricher.core.sessions.expiry import BUCKET_SECONDS
from enricher.core.sessions.merge import CONNECTION_RULES, DCID_RULES, later_kind
from enricher.core.sessions.session import (
    COMPLETE,
    CONNECTION,
    DELIVERY,
    PARTIAL,
    Key,
    Session,
    _body_sum,
    _line_key,
    _repeated,
)
from enricher.core.sessions.table import _DUPLICATE, SessionTable

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

_ICID_ZERO_KINDS = frozenset(("hat", "delayed_hat_reject", "receiving_failed", "icid_disconnected"))


class Joins(SessionTable):
    """The connection-side half of the stitcher: ICID, DHAP, ICID 0 and DCID lines."""

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
        revived = False
        if old is None:
            old = self._reopen(key, ts, kind, lk, ev)
            if old is _DUPLICATE:
                return
            revived = old is not None
        elif ts <= old.last_ts and _repeated(old, lk, ev):
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
        # Its messages show it as of their cut: some keep a copy of it as it is, some take this line too.
        views = self._shown(c, ts, revived and c is old) if c.mids else None
        fresh = not c.nlines  # no line of its own yet (opened by a message line, or just now)
        CONNECTION_RULES[kind](c, ev)
        self._apply(c, lk, ev.raw)
        if views is not None:
            for v in views:
                self._apply_view(v, ev, ts, kind)
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

    def _shown(self, c: Session, ts: float, revived: bool) -> list[Session] | None:
        """Before a line stamped `ts` changes connection `c` (`c.mids` not empty): each message of `c` shows it as
        of its cut (`finished_ts + grace_seconds`: the connection's lines stamped before it, in any arrival
        order; docs/decisions/late-lines.md section 3). A message whose cut is not after `ts` keeps a copy of `c`
        as it is (`Session.view`, made once); one whose cut is after `ts` is written again if it was written
        (a late line of a written connection, `revived`, also rewrites its written messages without an end).
        Returns the copies the line must also be applied to (`Joins._apply_view`)."""
        views: list[Session] | None = None
        app = c.appliance
        grace = self.config.grace_seconds
        for mid in c.mids or ():
            key = ("m", app, mid)
            m = self._open.get(key)
            written = m is None
            if m is None:
                m = self._closed.get(key)
                if m is None:
                    continue
            v = m.conn
            if v is None or (v is not c and v.conn is not c):
                continue
            fin = m.finished_ts
            if fin is not None and ts >= fin + grace:
                if v is c:
                    m.conn = c.view()
                continue
            if v is not c:
                if views is None:
                    views = []
                views.append(v)
            if written and (fin is not None or revived):
                self._revive(m, ts)
        return views

    def _apply_view(self, v: Session, ev: Event, ts: float, kind: str) -> None:
        """A connection line stamped before a message's cut, applied to the copy of its connection that the
        message shows (`Joins._shown`), as `_on_connection` applies it to the connection."""
        fresh = not v.nlines
        CONNECTION_RULES[kind](v, ev)
        if self._keep_raw:
            v.add_line(self._seq, ev.raw)
        else:
            v.nlines += 1
        if kind in _FAILURE_KINDS or kind == "dhap_drop":
            self._mark_in_flight(v)
        if ts > v.last_ts or fresh:
            if ts < v.first_ts:
                v.first_ts = ts
            v.last_ts = ts
            v.last_kind = kind
        elif ts == v.last_ts:
            if later_kind(kind, v.last_kind):
                v.last_kind = kind
        elif ts < v.first_ts:
            v.first_ts = ts

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
            if _repeated(held, lk, ev):
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
        if held is not None and _repeated(held, lk, ev):
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
            views = self._shown(c, ts, False) if c.mids else None
            if views is not None:
                for v in views:
                    self._apply_view(v, ev, ts, "dhap_drop")
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
            c.hashes = bytes(g.hashes or b"") if hs is None else hs + (g.hashes or b"")
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
        elif _repeated(rec, lk, ev):
            self.stats.duplicates += 1
            return
        self.stats.delivery_connection += 1
        DCID_RULES[ev.kind](rec, ev)
        hs = rec.hashes
        rec.hashes = lk if hs is None else hs + lk
        rec.nlines += 1
        rec.last_ts = ts
        for mid in rec.mids or ():
            msg = self._open.get(("m", ev.appliance, mid))
            if msg is not None:
                self._copy_delivery(rec, msg)
        self._file(rec)
