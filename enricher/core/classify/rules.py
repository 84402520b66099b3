"""Abort classification: `abort_reason` and `abort_layer` as in docs/abort-taxonomy.md.

One small rule per case, tried in order; each returns a `Verdict` with the evidence it used, or None.
When the evidence is not enough the answer is `abort_layer: unknown`, never a silent guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enricher.core.parsing.timestamps import format_iso
from enricher.core.sessions.session import MESSAGE, Session

# abort_layer values (the contract's closed list).
TRANSPORT, APPLICATION, TIMEOUT, POLICY = "transport", "application", "timeout", "policy"
RESOURCE, TLS, DELIVERY, INTERNAL, UNKNOWN = "resource", "tls", "delivery", "internal", "unknown"
LAYERS = frozenset((TRANSPORT, APPLICATION, TIMEOUT, POLICY, RESOURCE, TLS, DELIVERY, INTERNAL, UNKNOWN))


@dataclass(frozen=True)
class ClassifyConfig:
    """Settings the classification depends on (recorded in the evidence when used)."""

    inbound_timeout_seconds: float = 300.0
    inbound_timeout_tolerance_seconds: float = 5.0
    # Per appliance (`esa1`) or per appliance and listener interface (`esa1/Data 1`) overrides.
    inbound_timeouts: dict[str, float] = field(default_factory=dict)
    lost_window_seconds: float = 5.0


@dataclass
class Verdict:
    """How a session ended: the two contract fields plus what the document says around them."""

    abort_reason: str | None
    abort_layer: str | None
    disposition: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """ECS event.outcome."""
        if self.abort_reason in _NOT_FAILURES:
            return _NOT_FAILURES[self.abort_reason]
        if self.abort_reason is not None:
            return "failure"
        return "success" if self.disposition in _SUCCESS else "unknown"


_SUCCESS = frozenset(("delivered", "quarantined", "released", "queued", "done"))
# Endings with an abort_reason that are not (known to be) failures: a plain QUIT, a delivery still being
# retried, an ending the log never showed.
_NOT_FAILURES = {"quit_without_message": "success", "soft_bounce": "unknown", "ending_not_logged": "unknown"}

# Layers of a connection's own ending that deserve a connection document even when it carried messages.
CONNECTION_LEVEL_LAYERS = frozenset(("policy", "resource", "timeout", "internal"))

Rule = Callable[[Session, ClassifyConfig], "Verdict | None"]


def _aborted(slug: str, layer: str, disposition: str = "aborted", /, **evidence: Any) -> Verdict:
    return Verdict(slug, layer, disposition, {k: v for k, v in evidence.items() if v is not None})


# --- message endings -------------------------------------------------------------------------------------
def _timeout_for(s: Session, cfg: ClassifyConfig) -> float:
    iface = s.conn.data.get("interface") if s.conn is not None else None
    if iface is not None:
        v = cfg.inbound_timeouts.get(f"{s.appliance}/{iface}")
        if v is not None:
            return v
    return cfg.inbound_timeouts.get(s.appliance, cfg.inbound_timeout_seconds)


def _receiving_aborted(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    abort = s.data.get("abort")
    if abort is None or not abort["text"].startswith("Receiving aborted"):
        return None
    text = abort["text"]
    abort_ts = abort["ts"]
    if text.startswith("Receiving aborted by sender"):
        rcpts = s.data.get("rcpts") or []
        rejected = s.data.get("rejected") or []
        return _aborted(
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
        return _aborted(
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
        return _aborted("inbound_timeout", TIMEOUT, **evidence)
    return _aborted("receiving_aborted_unexplained", UNKNOWN, **evidence)


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


def _policy_abort(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    abort = s.data.get("abort")
    if abort is None:
        return None
    text = abort["text"]
    for rx, reason in _DROPS:
        m = rx.search(text)
        if m:
            disposition = "bounced" if reason == "content_filter_bounce" else "dropped"
            return _aborted(reason, POLICY, disposition, abort_line=text, agent=m.group("agent"))
    return _aborted("message_aborted_unrecognized", UNKNOWN, abort_line=text)


def _inherited(s: Session, cfg: ClassifyConfig, **evidence: Any) -> Verdict | None:
    """The connection's own failure, when this message was the one it was receiving (`in_flight_mid`)."""
    conn = s.conn
    if conn is None or conn.data.get("in_flight_mid") != s.ident:
        return None
    failed = connection_failure(conn, cfg)
    if failed is None:
        return None
    evidence["inherited_from"] = "connection"
    evidence["icid"] = conn.ident
    for k, v in failed.evidence.items():
        evidence["connection_rule" if k == "rule" else k] = v
    return _aborted(failed.abort_reason or "", failed.abort_layer or UNKNOWN, "aborted", **evidence)


def _connection_inherited(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """No ending line of its own (or a bare `Message finished … aborted`): its connection's failure ended it."""
    if s.finished_ts is not None and s.data.get("finished") != "aborted":
        return None
    return _inherited(s, cfg)


def _finished_aborted(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    if s.data.get("finished") == "aborted":
        return _aborted("aborted_without_reason", UNKNOWN, finished_line="aborted")
    return None


def _quarantine(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    q = s.data.get("quarantine")
    if q is None:
        return None
    status = q.get("status")
    if status == "deleted":
        return _aborted("quarantine_deleted", POLICY, "deleted", quarantine=q.get("quarantine"))
    if status == "released":
        # A released message is judged by its delivery; one reinjected as a new MID ends as `released`.
        delivered = any(d.get("type") != "RCID" for d in (s.data.get("deliveries") or {}).values())
        return None if delivered else Verdict(None, None, "released", {"quarantine": q.get("quarantine")} if q.get("quarantine") else {})
    evidence = {k: v for k, v in (("quarantine", q.get("quarantine")), ("status", status)) if v is not None}
    return Verdict(None, None, "quarantined", evidence)


def _delivery(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    bounces = s.data.get("bounces")
    if bounces:
        b = bounces[0]
        code = b.get("code") or ""
        reason = b.get("reason") or ""
        if code == "5.4.7" or "expired" in reason.lower():
            slug = "expired_in_queue"
        elif b.get("dcid") == 0:
            slug = "dns_hard_bounce"
        else:
            slug = "hard_bounce"
        return _aborted(slug, DELIVERY, "bounced", code=code, reason=reason, rid=b.get("rid"), bounces=len(bounces))
    deliveries = s.data.get("deliveries") or {}
    delivered = any(d.get("status") in ("delivered", "quarantined_external") for d in deliveries.values())
    if s.data.get("possible_delivery"):
        return _aborted("possible_duplicate_delivery", DELIVERY, "possible_delivery")
    if not delivered:
        for d in deliveries.values():
            tls = d.get("tls") or {}
            if tls.get("status") in ("failed", "failure"):
                return _aborted("tls_failed_outbound", TLS, "not_delivered", dcid=d.get("dcid"))
            if d.get("connection_error"):
                return _aborted(
                    "delivery_connection_error",
                    DELIVERY,
                    "not_delivered",
                    dcid=d.get("dcid"),
                    detail=d["connection_error"].get("detail"),
                )
        delays = s.data.get("delays")
        if delays:
            last = delays[-1]
            return _aborted(
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
            return _aborted("soft_bounce", DELIVERY, "delayed", pending_till=pending[-1].get("until"), terminal=False)
    if delivered:
        return Verdict(None, None, "delivered", {})
    return None


def _recipients_rejected(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Every recipient refused (RAT, LDAP, rate limit) and no other ending: the message-level reason.

    A recipient accepted in the SMTP dialogue and then dropped or bounced by an LDAP accept query in the work
    queue (`LDAP: Drop query …`) counts as refused."""
    rejected = s.data.get("rejected")
    if not rejected:
        return None
    rcpts = s.data.get("rcpts")
    if rcpts:
        refused = {r.get("address") for r in rejected}
        if any(address not in refused for _rid, address in rcpts):
            return None
    # The earliest refusal, whatever the order its lines arrived in (state from before it was kept: the first).
    reason, by = s.data.get("first_rejected") or (rejected[0]["reason"], rejected[0].get("by"))
    return _aborted(reason, POLICY, "rejected", by=by or None, recipients_rejected=len(rejected))


def _message_default(s: Session, cfg: ClassifyConfig) -> Verdict:
    if s.data.get("finished") == "done":
        return Verdict(None, None, "queued" if s.data.get("queued") else "done", {})
    return Verdict(None, None, "in_progress", {})


def _ending_not_logged(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Closed by a window (idle timeout, eviction, end of input, batch end) before its terminal line, with
    nothing else to tell how it ended: say so, with what was seen last and what closed it."""
    ending = s.ending
    if ending is None or (s.finished_ts if s.kind == MESSAGE else s.closed_ts) is not None:
        return None
    evidence = {k: v for k, v in ending.items() if k != "at"}
    evidence["last_line_kind"] = s.last_kind or None
    evidence["last_line_time"] = format_iso(s.last_ts)
    at = ending["at"]
    if ending.get("closed_by") == "idle_timeout":
        # Closed as of its deadline, not as of the line whose clock showed it: that may be any of the lines
        # within the grace period after the deadline, as they arrive in any order.
        at = s.last_ts + ending["idle_timeout_seconds"]
    evidence["seconds_before_close"] = round(at - s.last_ts, 3)
    return _aborted("ending_not_logged", UNKNOWN, "unknown", **evidence)


# Precedence: the message's own ending lines, then its connection's failure if it was being received, then
# what it went through once received (quarantine, delivery, recipients), and only then an ending not logged.
MESSAGE_RULES: list[Rule] = [
    _receiving_aborted,
    _policy_abort,
    _connection_inherited,
    _finished_aborted,
    _quarantine,
    _delivery,
    _recipients_rejected,
    _ending_not_logged,
]


# --- connection endings (connections that carried no message) --------------------------------------------
_RECEIVING_FAILED: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r">\s*2X Max Size|tarpit", re.I), "message_size_exceeded_tarpit", POLICY),
    (re.compile(r"size exceeds", re.I), "message_size_exceeded", POLICY),
    (re.compile(r"Connection limit", re.I), "connection_limit_exceeded", RESOURCE),
    (re.compile(r"Too Many Messages", re.I), "too_many_messages", RESOURCE),
    (re.compile(r"queue", re.I), "queue_full", RESOURCE),
    (re.compile(r"memory|resource", re.I), "resources_low", RESOURCE),
]


def _connection_policy(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    hat = c.data.get("hat") or {}
    action = (hat.get("action") or "").upper()
    sg = hat.get("sender_group")
    # A delayed reject logs `REJECT` first, then goes on for recipient logging: the delay is the answer.
    if "delayed_hat_reject" in c.data:
        detail = c.data["delayed_hat_reject"]
        return _aborted("hat_delayed_reject", POLICY, "rejected", sender_group=sg, detail=detail if isinstance(detail, str) else None)
    if action == "TCPREFUSE":
        return _aborted("hat_tcprefuse", POLICY, "rejected", sender_group=sg, sbrs=c.data.get("sbrs"))
    if action == "REJECT":
        return _aborted("hat_reject", POLICY, "rejected", sender_group=sg, sbrs=c.data.get("sbrs"))
    if "dhap_drop" in c.data:
        return _aborted("dhap_drop_connection", POLICY, "rejected", **c.data["dhap_drop"])
    return None


def receiving_failed_reason(text: str) -> tuple[str, str]:
    """`ICID n Receiving Failed: <text>` → (abort_reason, abort_layer)."""
    for rx, reason, layer in _RECEIVING_FAILED:
        if rx.search(text):
            return reason, layer
    return "receiving_failed_unrecognized", UNKNOWN


def _connection_failed(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    failed = c.data.get("receiving_failed")
    if failed:
        reason, layer = receiving_failed_reason(failed)
        return _aborted(reason, layer, "rejected" if layer == POLICY else "failed", receiving_failed=failed)
    disc = c.data.get("disconnected")
    if disc:
        low = disc.lower() if isinstance(disc, str) else ""
        if "no messages injected" in low:
            return _aborted("inbound_timeout", TIMEOUT, "timed_out", disconnected=disc)
        if "allowable connection time" in low:
            return _aborted("total_connection_time_exceeded", TIMEOUT, "timed_out", disconnected=disc)
    return None


def _connection_tls(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    if "tls_required_not_initiated" in c.data:
        return _aborted("tls_required_not_initiated", TLS, "tls_failed", detail=c.data["tls_required_not_initiated"])
    tls = c.data.get("tls") or {}
    if tls.get("status") in ("failed", "failure"):
        return _aborted("tls_failed_inbound", TLS, "tls_failed", detail=tls.get("detail"))
    auth = c.data.get("smtp_auth") or {}
    if auth.get("result") == "failed":
        return _aborted("smtp_auth_failed", TLS, "auth_failed", user=auth.get("user"))
    if "connection_killed" in c.data:
        return _aborted("server_connection_killed", INTERNAL, "killed")
    return None


def _connection_end(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    if c.lost_ts is not None:
        return _aborted("connection_lost_before_mail_from", TRANSPORT, "lost", icid_lost=True)
    if c.closed_ts is not None:
        if "start_ts" not in c.data and "hat" not in c.data:
            # Only the close was seen (the connection began before the input did): not enough to judge.
            return _aborted("connection_end_unexplained", UNKNOWN, "closed", icid_close=True, connection_start_seen=False)
        return _aborted("quit_without_message", APPLICATION, "closed", icid_close=True)
    return None


# A connection's own failures: the ones a message being received inherits.
CONNECTION_FAILURE_RULES: list[Rule] = [_connection_policy, _connection_failed, _connection_tls]
CONNECTION_RULES: list[Rule] = [*CONNECTION_FAILURE_RULES, _connection_end, _ending_not_logged]


def _first(rules: list[Rule], s: Session, cfg: ClassifyConfig) -> Verdict | None:
    for rule in rules:
        v = rule(s, cfg)
        if v is not None:
            v.evidence.setdefault("rule", rule.__name__.lstrip("_"))
            return v
    return None


def connection_failure(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """The connection's own failure (docs/abort-taxonomy.md §2, inbound side), if it had one."""
    return _first(CONNECTION_FAILURE_RULES, c, cfg)


def classify(s: Session, cfg: ClassifyConfig) -> Verdict:
    """Classify one session (message or connection) by the first rule that applies."""
    if s.kind == MESSAGE:
        return _first(MESSAGE_RULES, s, cfg) or _message_default(s, cfg)
    return _first(CONNECTION_RULES, s, cfg) or Verdict(None, None, "open", {})


def connection_document_verdict(c: Session, cfg: ClassifyConfig) -> Verdict | None:
    """A connection that carried messages gets a document of its own only when it ended abnormally at its
    own level and no message was being received then (that message inherits the failure and tells it);
    returns its verdict in that case, else None."""
    if "in_flight_mid" in c.data:
        return None
    v = classify(c, cfg)
    return v if v.abort_layer in CONNECTION_LEVEL_LAYERS else None
