"""Message endings (docs/abort-taxonomy.md §1 and §3): the message's own ending lines, its connection's
failure when it was the message being received, and what happened to it once received."""

from __future__ import annotations

import re
from typing import Any

from enricher.core.classify.connections import connection_failure, was_receiving
from enricher.core.classify.verdict import (
    APPLICATION,
    DELIVERY,
    POLICY,
    TIMEOUT,
    TLS,
    TRANSPORT,
    UNKNOWN,
    ClassifyConfig,
    Verdict,
    aborted,
)
from enricher.core.sessions.session import Session


def _timeout_for(s: Session, cfg: ClassifyConfig) -> float:
    iface = s.conn.data.get("interface") if s.conn is not None else None
    if iface is not None:
        v = cfg.inbound_timeouts.get(f"{s.appliance}/{iface}")
        if v is not None:
            return v
    return cfg.inbound_timeouts.get(s.appliance, cfg.inbound_timeout_seconds)


def receiving_aborted(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """`Receiving aborted`: by the sender, by its connection's failure, lost, or the listener's timeout."""
    abort = s.data.get("abort")
    if abort is None or not abort["text"].startswith("Receiving aborted"):
        return None
    text = abort["text"]
    abort_ts = abort["ts"]
    if text.startswith("Receiving aborted by sender"):
        rcpts = s.data.get("rcpts") or []
        rejected = s.data.get("rejected") or []
        return aborted(
            "sender_quit",
            APPLICATION,
            abort_line=text,
            mail_from_null=s.data.get("from") == "",
            recipients=len(rcpts),
            recipients_rejected=len(rejected),
        )
    # The connection says why: its own failure (size, resources, DHAP, TLS, …) while receiving this message.
    inherited = _inherited(s, cfg, abort_line=text)
    if inherited is not None:
        return inherited
    conn = s.conn
    lost_ts = conn.lost_ts if conn is not None else None
    if lost_ts is not None and abort_ts is not None and abs(lost_ts - abort_ts) <= cfg.lost_window_seconds:
        return aborted(
            "connection_lost",
            TRANSPORT,
            abort_line=text,
            icid=conn.ident if conn is not None else None,
            icid_lost_offset_seconds=round(lost_ts - abort_ts, 3),
            lost_window_seconds=cfg.lost_window_seconds,
        )
    start_ts, start_from = None, None
    if conn is not None and "start_ts" in conn.data:
        start_ts, start_from = conn.data["start_ts"], "new_smtp_icid"
    else:
        start_ts, start_from = s.first_ts, "first_mid_line"
    timeout = _timeout_for(s, cfg)
    elapsed = None if abort_ts is None or start_ts is None else round(abort_ts - start_ts, 3)
    evidence = {
        "abort_line": text,
        "icid_lost": lost_ts is not None,
        "elapsed_seconds": elapsed,
        "elapsed_from": start_from,
        "inbound_timeout_seconds": timeout,
        "tolerance_seconds": cfg.inbound_timeout_tolerance_seconds,
    }
    if elapsed is not None and abs(elapsed - timeout) <= cfg.inbound_timeout_tolerance_seconds:
        return aborted("inbound_timeout", TIMEOUT, **evidence)
    return aborted("receiving_aborted_unexplained", UNKNOWN, **evidence)


_DROPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Dropped by content filter '(?P<agent>[^']*)'", re.I), "content_filter_drop"),
    (re.compile(r"Bounced by content filter '(?P<agent>[^']*)'", re.I), "content_filter_bounce"),
    (re.compile(r"Dropped by filter '(?P<agent>[^']*)'", re.I), "message_filter_drop"),
    (re.compile(r"Dropped by (?P<agent>amp|Advanced Malware Protection)\b", re.I), "amp_drop"),
    (re.compile(r"Dropped by (?P<agent>antivirus|anti-virus|sophos|mcafee)\b", re.I), "antivirus_drop"),
    (
        re.compile(r"Dropped by (?P<agent>CASE|antispam|anti-spam|IMS|Brightmail|SLBL|graymail|spam\S*)\b", re.I),
        "antispam_drop",
    ),
    (re.compile(r"Dropped by (?P<agent>.+)", re.I), "message_dropped"),
]


def policy_abort(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Any other `Message aborted` line: dropped or bounced by a filter or a scanning engine."""
    abort = s.data.get("abort")
    if abort is None:
        return None
    text = abort["text"]
    for rx, reason in _DROPS:
        m = rx.search(text)
        if m:
            disposition = "bounced" if reason == "content_filter_bounce" else "dropped"
            return aborted(reason, POLICY, disposition, abort_line=text, agent=m.group("agent"))
    return aborted("message_aborted_unrecognized", UNKNOWN, abort_line=text)


def _inherited(s: Session, cfg: ClassifyConfig, **evidence: Any) -> Verdict | None:
    """The connection's own failure, when this message was the one it was receiving (`in_flight_mid`)."""
    conn = s.conn
    if conn is None or not was_receiving(conn, s):
        return None
    failed = connection_failure(conn, cfg)
    if failed is None:
        return None
    evidence["inherited_from"] = "connection"
    evidence["icid"] = conn.ident
    for k, v in failed.evidence.items():
        evidence["connection_rule" if k == "rule" else k] = v
    return aborted(failed.abort_reason or "", failed.abort_layer or UNKNOWN, "aborted", **evidence)


def connection_inherited(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """No ending line of its own (or a bare `Message finished … aborted`): its connection's failure ended it."""
    if s.finished_ts is not None and s.data.get("finished") != "aborted":
        return None
    return _inherited(s, cfg)


def finished_aborted(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """`Message finished … aborted` and nothing to say why."""
    if s.data.get("finished") == "aborted":
        return aborted("aborted_without_reason", UNKNOWN, finished_line="aborted")
    return None


def quarantine(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Held in, released from or deleted from a quarantine."""
    q = s.data.get("quarantine")
    if q is None:
        return None
    status = q.get("status")
    if status == "deleted":
        return aborted("quarantine_deleted", POLICY, "deleted", quarantine=q.get("quarantine"))
    if status == "released":
        # A released message is judged by its delivery; one reinjected as a new MID ends as `released`.
        delivered = any(d.get("type") != "RCID" for d in (s.data.get("deliveries") or {}).values())
        return None if delivered else Verdict(None, None, "released", {"quarantine": q.get("quarantine")} if q.get("quarantine") else {})
    evidence = {k: v for k, v in (("quarantine", q.get("quarantine")), ("status", status)) if v is not None}
    return Verdict(None, None, "quarantined", evidence)


def _bounce_order(b: dict[str, Any]) -> tuple[float, str, int, str, str]:
    """Sort key of a bounce: its stamp, then its fields (a recipient may be a number or a list)."""
    return (b.get("ts") or 0.0, repr(b.get("rid")), b.get("dcid") or 0, b.get("code") or "", b.get("reason") or "")


def delivery(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """The outbound side: bounced, delivered, delivery failures and retries (§3)."""
    bounces = s.data.get("bounces")
    if bounces:
        # The earliest, then by recipient: bounces of one second are listed in arrival order (not the log's).
        b = bounces[0] if len(bounces) == 1 else min(bounces, key=_bounce_order)
        code = b.get("code") or ""
        reason = b.get("reason") or ""
        if code == "5.4.7" or "expired" in reason.lower():
            slug = "expired_in_queue"
        elif b.get("dcid") == 0:
            slug = "dns_hard_bounce"
        else:
            slug = "hard_bounce"
        return aborted(slug, DELIVERY, "bounced", code=code, reason=reason, rid=b.get("rid"), bounces=len(bounces))
    deliveries = s.data.get("deliveries") or {}
    delivered = any(d.get("status") in ("delivered", "quarantined_external") for d in deliveries.values())
    if s.data.get("possible_delivery"):
        return aborted("possible_duplicate_delivery", DELIVERY, "possible_delivery")
    if not delivered:
        for d in deliveries.values():
            tls = d.get("tls") or {}
            if tls.get("status") in ("failed", "failure"):
                return aborted("tls_failed_outbound", TLS, "not_delivered", dcid=d.get("dcid"))
            if d.get("connection_error"):
                return aborted(
                    "delivery_connection_error",
                    DELIVERY,
                    "not_delivered",
                    dcid=d.get("dcid"),
                    detail=d["connection_error"].get("detail"),
                )
        delays = s.data.get("delays")
        if delays:
            last = delays[-1]
            return aborted(
                "soft_bounce",
                DELIVERY,
                "delayed",
                code=last.get("code"),
                reason=last.get("reason"),
                terminal=False,
                delays=len(delays),
            )
        pending = s.data.get("pending")
        if pending:
            return aborted("soft_bounce", DELIVERY, "delayed", pending_till=pending[-1].get("until"), terminal=False)
    if delivered:
        return Verdict(None, None, "delivered", {})
    return None


def message_default(s: Session, cfg: ClassifyConfig) -> Verdict:
    """No rule applies: finished normally (queued or done), or still in progress."""
    if s.data.get("finished") == "done":
        return Verdict(None, None, "queued" if s.data.get("queued") else "done", {})
    return Verdict(None, None, "in_progress", {})
