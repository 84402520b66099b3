"""Inbound connection endings (docs/abort-taxonomy.md §2): the connection's own failures, how a connection
with no message ended, and which message a failure interrupted (that message tells it, not the connection)."""

from __future__ import annotations

import re
from collections.abc import Callable

from enricher.core.classify.verdict import (
    APPLICATION,
    INTERNAL,
    POLICY,
    RESOURCE,
    TIMEOUT,
    TLS,
    TRANSPORT,
    UNKNOWN,
    ClassifyConfig,
    RuleTable,
    Verdict,
    aborted,
    first_verdict,
)
from enricher.core.sessions.session import Session

# Layers of a connection's own ending that deserve a connection document even when it carried messages.
CONNECTION_LEVEL_LAYERS = frozenset((POLICY, RESOURCE, TIMEOUT, INTERNAL))

_RECEIVING_FAILED: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r">\s*2X Max Size|tarpit", re.I), "message_size_exceeded_tarpit", POLICY),
    (re.compile(r"size exceeds", re.I), "message_size_exceeded", POLICY),
    (re.compile(r"Connection limit", re.I), "connection_limit_exceeded", RESOURCE),
    (re.compile(r"Too Many Messages", re.I), "too_many_messages", RESOURCE),
    (re.compile(r"queue", re.I), "queue_full", RESOURCE),
    (re.compile(r"memory|resource", re.I), "resources_low", RESOURCE),
]


def receiving_failed_reason(text: str) -> tuple[str, str]:
    """`ICID n Receiving Failed: <text>` → (abort_reason, abort_layer)."""
    for rx, reason, layer in _RECEIVING_FAILED:
        if rx.search(text):
            return reason, layer
    return "receiving_failed_unrecognized", UNKNOWN


def connection_policy(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """HAT (delayed) REJECT or TCPREFUSE, or a DHAP drop: the listener's policy refused the connection."""
    hat = c.data.get("hat") or {}
    action = (hat.get("action") or "").upper()
    sg = hat.get("sender_group")
    # A delayed reject logs `REJECT` first, then goes on for recipient logging: the delay is the answer.
    if "delayed_hat_reject" in c.data:
        detail = c.data["delayed_hat_reject"]
        return aborted("hat_delayed_reject", POLICY, "rejected", sender_group=sg, detail=detail if isinstance(detail, str) else None)
    if action == "TCPREFUSE":
        return aborted("hat_tcprefuse", POLICY, "rejected", sender_group=sg, sbrs=c.data.get("sbrs"))
    if action == "REJECT":
        return aborted("hat_reject", POLICY, "rejected", sender_group=sg, sbrs=c.data.get("sbrs"))
    if "dhap_drop" in c.data:
        return aborted("dhap_drop_connection", POLICY, "rejected", **c.data["dhap_drop"])
    return None


def connection_failed(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """`Receiving Failed` (size, limits, resources) or a disconnect the listener's timers caused."""
    failed = c.data.get("receiving_failed")
    if failed:
        reason, layer = receiving_failed_reason(failed)
        return aborted(reason, layer, "rejected" if layer == POLICY else "failed", receiving_failed=failed)
    disc = c.data.get("disconnected")
    if disc:
        low = disc.lower() if isinstance(disc, str) else ""
        if "no messages injected" in low:
            return aborted("inbound_timeout", TIMEOUT, "timed_out", disconnected=disc)
        if "allowable connection time" in low:
            return aborted("total_connection_time_exceeded", TIMEOUT, "timed_out", disconnected=disc)
    return None


def connection_tls(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """TLS required but not started, a failed TLS handshake or SMTP AUTH, or the connection killed."""
    if "tls_required_not_initiated" in c.data:
        return aborted("tls_required_not_initiated", TLS, "tls_failed", detail=c.data["tls_required_not_initiated"])
    tls = c.data.get("tls") or {}
    if tls.get("status") in ("failed", "failure"):
        return aborted("tls_failed_inbound", TLS, "tls_failed", detail=tls.get("detail"))
    auth = c.data.get("smtp_auth") or {}
    if auth.get("result") == "failed":
        return aborted("smtp_auth_failed", TLS, "auth_failed", user=auth.get("user"))
    if "connection_killed" in c.data:
        return aborted("server_connection_killed", INTERNAL, "killed")
    return None


def connection_end(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """No failure of its own: lost, or closed after a QUIT (or closed with too little seen to judge)."""
    if c.lost_ts is not None:
        return aborted("connection_lost_before_mail_from", TRANSPORT, "lost", icid_lost=True)
    if c.closed_ts is not None:
        if "start_ts" not in c.data and "hat" not in c.data:
            # Only the close was seen (the connection began before the input did): not enough to judge.
            return aborted("connection_end_unexplained", UNKNOWN, "closed", icid_close=True, connection_start_seen=False)
        return aborted("quit_without_message", APPLICATION, "closed", icid_close=True)
    return None


# A connection's own failures, in order: the ones a message being received inherits.
CONNECTION_FAILURE_RULES: RuleTable = (
    ("connection_policy", connection_policy),
    ("connection_failed", connection_failed),
    ("connection_tls", connection_tls),
)


def connection_failure(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """The connection's own failure (docs/abort-taxonomy.md §2, inbound side), if it had one."""
    return first_verdict(CONNECTION_FAILURE_RULES, c, cfg)


def carried(c: Session, m: Session) -> bool:
    """Whether `m` came on connection `c`: its `conn` is `c`, or the copy of `c` it shows (`Session.view`)."""
    conn = m.conn
    return conn is c or (conn is not None and conn.conn is c)


def was_receiving(c: Session, m: Session) -> bool:
    """Whether `m` is the message connection `c` was receiving at its own failure: the message the stitcher
    saw open and not yet received at the failure line (`in_flight_mid`, what the stream showed then), unless
    it turned out received after all (`ready`, lines of one second out of order)."""
    return carried(c, m) and c.data.get("in_flight_mid") == m.ident and "ready_ts" not in m.data


def in_flight_mid(c: Session, message: Callable[[int], Session | None]) -> int | None:
    """The MID of the message `c` was receiving at its own failure (`was_receiving`), if any; `message` gives
    the connection's messages at hand by MID (one not at hand is taken as not received)."""
    mid = c.data.get("in_flight_mid")
    if mid is None:
        return None
    m = message(mid)
    if m is None or not carried(c, m):
        return mid  # type: ignore[no-any-return]
    return mid if was_receiving(c, m) else None
