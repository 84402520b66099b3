"""The stitcher's durable state: snapshot and restore of its whole windowed state (JSON-ready), and the
snapshot's byte encoding that state stores keep (pure: no I/O; the stores are in enricher/edges/state/).

This module is part of the `Stitcher` class, kept apart for size: only `Stitcher.snapshot()` and
`Stitcher.restore()` call `snapshot`/`restore`, which read and set the stitcher's private fields (declared
in stitcher.pxd). Everyone else goes through those two methods.

Everything that decides future output is kept: open sessions, connections that already closed but live
on inside open messages, dormant sessions, written sessions kept for late lines and the keys of forgotten
ones, each session's duplicate memory, the grace queue, the IP index for DHAP lines (and the lone DHAP lines waiting for a late connection), pending
parent/child links (both ways), the arrival sequence and the per-appliance clocks. A restored stitcher writes the same
documents as one that never stopped (tested by cutting a stream at many points).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from enricher.core.sessions.session import CONNECTION, Key, Session, key_from_v3

if TYPE_CHECKING:
    from enricher.core.sessions.stitcher import Stitcher

SNAPSHOT_VERSION = 4
# Older versions restored as they are: version 3 kept 8-byte line keys (converted to today's 4-byte keys
# on restore, see `_keys_from_v3`); version 2 had no duplicate memory (sessions restored from it treat
# none of their earlier lines as seen), no written sessions kept for late lines (a late line for a session
# written before the upgrade opens a partial one, as before) and a per-second count of one-line connections.
_READABLE = frozenset((2, 3, SNAPSHOT_VERSION))


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialise and compress a snapshot (what a state store keeps)."""
    return zlib.compress(orjson.dumps(state), 3)


def decode_state(blob: bytes) -> dict[str, Any]:
    """Inverse of `encode_state`."""
    return orjson.loads(zlib.decompress(blob))  # type: ignore[no-any-return]


def _keys_from_v3(data: dict[str, Any]) -> dict[str, Any]:
    """A session's state of version 3 with its 8-byte line keys converted to the 4-byte keys of today."""
    old = data.get("hashes")
    if not old:
        return data
    raw = bytes.fromhex(old)
    return {**data, "hashes": b"".join(key_from_v3(raw[i : i + 8]) for i in range(0, len(raw), 8)).hex()}


def snapshot(st: Stitcher) -> dict[str, Any]:
    """The stitcher's state as plain data."""
    open_sessions = list(st._open.values())
    detached: dict[Key, Session] = {}
    views: list[list[Any]] = []  # messages that show their connection as of their cut (`Session.view`)
    for x in [*open_sessions, *st._dormant.values(), *st._closed.values()]:
        c = x.conn
        if c is not None and c.conn is not None:
            views.append([list(x.key), c.to_state()])
            c = c.conn
        if c is not None and st._open.get(c.key) is not c and st._closed.get(c.key) is not c:
            detached[c.key] = c
    return {
        "version": SNAPSHOT_VERSION,
        "seq": st._seq,
        "watermark": st._watermark,
        "appliances": st.appliances,
        "sessions": [x.to_state() for x in open_sessions],
        "grace": {app: [[d, list(k)] for d, k in sorted((d, k) for d, ks in q.items() for k in ks)] for app, q in st._grace.items()},
        "dormant": [x.to_state() for x in st._dormant.values()],
        "closed": [x.to_state() for x in st._closed.values()],
        "digests": [[*k, v] for k, v in st._digests.items()],
        "by_ip": [[app, ip, icid] for (app, ip), icid in st._by_ip.items()],
        "detached": [x.to_state() for x in detached.values()],
        "pending_links": [[list(k), v] for k, v in st._pending_links.items()],
        "pending_children": [[list(k), v] for k, v in st._pending_children.items()],
        "views": views,
        "dhap_waiting": [[app, ip, [list(k) for k in keys]] for (app, ip), keys in st._dhap_waiting.items()],
    }


def restore(st: Stitcher, snap: dict[str, Any]) -> None:
    """Load `snapshot()` data into an empty stitcher; connections are re-linked to their messages."""
    if snap.get("version") not in _READABLE:
        raise ValueError(f"unsupported state snapshot version {snap.get('version')!r}")
    st._seq = snap["seq"]
    st._watermark = dict(snap["watermark"])
    st.appliances = {k: dict(v) for k, v in snap["appliances"].items()}
    links: list[tuple[Session, int]] = []
    # Every connection loaded under its ICID: a reused ICID has two (the open one last), and each message is
    # linked back to the one that carried it, not to whichever has the ICID now.
    conns: dict[tuple[str, int], list[Session]] = {}

    v3 = snap["version"] == 3

    def load(data: dict[str, Any]) -> Session:
        sess, icid = Session.from_state(_keys_from_v3(data) if v3 else data)
        if icid is not None:
            links.append((sess, icid))
        if sess.kind == CONNECTION:
            conns.setdefault((sess.appliance, sess.ident), []).append(sess)
        return sess

    for data in snap["detached"]:
        load(data)
    # Before the open sessions: where a reused ICID has a written and an open connection, the open one wins.
    st._closed = OrderedDict()
    for data in snap.get("closed", ()):
        sess = load(data)
        st._closed[sess.key] = sess
    st._digests = OrderedDict(((tag, app, ident), first) for tag, app, ident, first in snap.get("digests", ()))
    for data in snap["sessions"]:
        sess = load(data)
        st._hold(sess)
        st._file(sess)
    st._dormant = OrderedDict()
    for data in snap["dormant"]:
        sess = load(data)
        st._dormant[sess.key] = sess
    for sess, icid in links:
        found = conns.get((sess.appliance, icid))
        if not found:
            found = conns[(sess.appliance, icid)] = [Session(CONNECTION, sess.appliance, icid, sess.first_ts)]
        sess.conn = next((c for c in found if c.mids and sess.ident in c.mids), found[-1])
    # Absent from snapshots written before views existed: those messages show their connection as it is.
    for key, data in snap.get("views", ()):
        m = st._open.get(tuple(key)) or st._closed.get(tuple(key)) or st._dormant.get(tuple(key))
        if m is not None and m.conn is not None:
            view, _ = Session.from_state(data)
            view.conn = m.conn
            m.conn = view
    # (due, key) pairs per appliance, in any order (snapshots written before it was a heap hold a queue).
    st._grace, st._grace_dues = {}, {}
    for app, pairs in snap["grace"].items():
        for d, k in pairs:
            st._due_at(app, d, tuple(k))
    st._by_ip = {(app, ip): icid for app, ip, icid in snap["by_ip"]}
    st._pending_links = {tuple(k): v for k, v in snap["pending_links"]}
    st._pending_children = {tuple(k): v for k, v in snap.get("pending_children", ())}
    # Absent from snapshots written before it existed: their lone DHAP lines are written alone, as then.
    st._dhap_waiting = {(app, ip): [tuple(k) for k in keys] for app, ip, keys in snap.get("dhap_waiting", ())}
