"""Merge rules: how each event kind adds to a session's `data`. One small function per kind (pure).

Message sessions (appliance + MID) and connection sessions (appliance + ICID) each have their table. The
building blocks are in `merge_base` (lists are capped there: `LIST_CAP`), the delivery lines' rules in
`merge_delivery`; the abort slug of a refused recipient comes from `classify.recipients`.
"""

from __future__ import annotations

import re
from typing import Any

from enricher.core.classify.recipients import RCPT_REJECTED_LDAP_QUERY, RCPT_REJECTED_OTHER, refusal_reason
from enricher.core.event import Event
from enricher.core.sessions.merge_base import (
    NO_FIELDS,
    Merge,
    append,
    append_fields,
    append_value,
    earliest,
    flag,
    keep_earliest,
    set_fields,
    store_value,
)
from enricher.core.sessions.merge_delivery import bounce_log, bounced, delayed, delivery_start, message_done, possible
from enricher.core.sessions.session import Session


# --- message sessions ----------------------------------------------------------------------------------
def _start(s: Session, ev: Event) -> None:
    s.data["start_ts"] = ev.ts


def _mail_from(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["from"] = f.get("address", "")  # "" is the null sender (`From: <>`)
    extra = f.get("extra")
    if extra:
        s.data["from_extra"] = extra


def _rcpt(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    append(s.data, "rcpts", [f.get("rid"), f.get("address", "")])


def _reject(s: Session, ev: Event, item: dict[str, Any]) -> None:
    """One refused recipient; the earliest refusal (`first_rejected`: [reason, by]) is the message's reason."""
    append(s.data, "rejected", item)
    keep_earliest(s.data, "first_rejected", ev.ts, [item["reason"], item.get("by") or ""])


def _rejected(s: Session, ev: Event) -> None:
    item = {k: v for k, v in (ev.data or {}).items() if k in ("address", "by", "detail")}
    item["reason"] = refusal_reason(item.get("by", ""))
    _reject(s, ev, item)


def _invalid_rcpt(s: Session, ev: Event) -> None:
    """`Invalid recipient address: 'RCPT TO:<…>'`: the SMTP dialogue refused a malformed recipient."""
    f = ev.data or NO_FIELDS
    item: dict[str, Any] = {"by": "Invalid recipient address", "reason": RCPT_REJECTED_OTHER}
    if f.get("detail"):
        item["detail"] = f.get("detail")
    _reject(s, ev, item)


def _ldap_reject(s: Session, ev: Event) -> None:
    """`LDAP: Drop|Bounce query <name> MID m RID r address a`: the LDAP accept query, run in the work queue."""
    f = ev.data or NO_FIELDS
    by = f"LDAP {f.get('query', '')} query {f.get('name', '')}"
    _reject(s, ev, {"address": f.get("address", ""), "by": by, "reason": RCPT_REJECTED_LDAP_QUERY})


def _note(s: Session, ev: Event) -> None:
    """A debug, trace or notice line about the message: it joins the session's raw lines, nothing else."""


def _ready(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["size"] = f.get("size")
    s.data["ready_ts"] = ev.ts
    if "from" not in s.data and f.get("address") is not None:
        s.data["from"] = f.get("address")


def _policy(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    append(s.data, "policies", {"direction": f.get("direction"), "policy": f.get("policy")})


def _queued(s: Session, ev: Event) -> None:
    s.data["queued"] = True


_ENGINE_KEYS = {"CASE": "antispam", "IMS": "antispam", "BRIGHTMAIL": "antispam", "GRAYMAIL": "graymail"}


def _engine(interim: bool) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        engine = f.get("engine", "")
        key = _ENGINE_KEYS.get(engine.upper())
        verdict = f.get("verdict")
        if key is None:
            engines = s.data.setdefault("engines", {})
            engines[engine] = verdict
            return
        cur = s.data.get(key)
        if interim and cur is not None and not cur.get("interim"):
            return  # a final verdict is never replaced by an interim one
        s.data[key] = {"engine": engine, "verdict": verdict, "interim": interim}

    return rule


def _av(interim: bool) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        cur = s.data.get("antivirus")
        if interim and cur is not None and not cur.get("interim"):
            # The final verdict came first (lines of one second out of order): it stays, but the engine is
            # named on the interim line only.
            if f.get("engine") and not cur.get("engine"):
                cur["engine"] = f.get("engine")
            return
        item = {"verdict": f.get("verdict"), "interim": interim}
        if f.get("engine"):
            item["engine"] = f.get("engine")
        elif cur and cur.get("engine"):
            item["engine"] = cur["engine"]
        if f.get("detail"):
            item["detail"] = f.get("detail")
        s.data["antivirus"] = item

    return rule


def _link_child(relation: str) -> Merge:
    """`MID parent was split creating MID child` / `rewritten to child`: the line's MID is the parent."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        append(s.data, "children", {"mid": f.get("child"), "relation": relation})

    return rule


def _link_parent(relation: str) -> Merge:
    """`MID child generated based on MID parent` / `Reinjected MID parent as MID child`: line's MID is the child."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        s.data["parent"] = {"mid": f.get("parent"), "relation": relation}

    return rule


def _aborted(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["abort"] = {"text": f.get("reason", ""), "ts": ev.ts}


def _finished(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["finished"] = f.get("status")
    s.finished_ts = ev.ts


# A quarantine status in a message's life: among lines of one second, the later one in this order wins.
_QUARANTINE_RANK = {"tagged": 0, "quarantined": 1, "released": 2, "deleted": 2}


def _set_quarantine_status(s: Session, ev: Event, status: str) -> dict[str, Any]:
    """The message's quarantine record with `status` set if `ev` is its latest status line (by stamp, then
    by `_QUARANTINE_RANK`), whatever order the lines arrived in (`ISQ: Tagging` late after `Quarantined`)."""
    q: dict[str, Any] = s.data.setdefault("quarantine", {})
    ts = ev.ts if ev.ts is not None else 0.0
    old = q.get("status")
    seen = s.data.get("quarantine_ts")
    if old is None or seen is None or (ts, _QUARANTINE_RANK.get(status, 2)) >= (seen, _QUARANTINE_RANK.get(old, 2)):
        q["status"] = status
        s.data["quarantine_ts"] = ts  # not in the document (the quarantine record is)
    return q


def _quarantined(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    q = _set_quarantine_status(s, ev, "quarantined")
    for k in ("quarantine", "reason"):
        if f.get(k):
            q[k] = f.get(k)


def _quarantine_status(status: str) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        q = _set_quarantine_status(s, ev, status)
        if f.get("quarantine"):
            q["quarantine"] = f.get("quarantine")

    return rule


def _dlp(s: Session, ev: Event) -> None:
    s.data["dlp"] = dict(ev.data or {})


# The reputation answer names the file's SHA-256 in its tail: `…, sha256 = <hex>, upload_action = …`.
_REPUTATION_SHA256 = re.compile(r"\bsha256 ?= ?([0-9A-Fa-f]{64})\b", re.I)


def _amp_reputation(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    item: dict[str, Any] = {n: f[n] for n in ("filename", "disposition", "malware") if n in f}
    m = _REPUTATION_SHA256.search(f.get("detail") or "")
    if m is not None:
        item["sha256"] = m.group(1).lower()
    append(s.data, "amp_files", item)


def _cef(s: Session, ev: Event) -> None:
    s.data["consolidated"] = dict(ev.data or {})


def _unrecognized(s: Session, ev: Event) -> None:
    s.unrecognized += 1


MESSAGE_RULES: dict[str, Merge] = {
    "start_mid": _start,
    "mail_from": _mail_from,
    "rcpt_to": _rcpt,
    "rcpt_rejected": _rejected,
    "message_id": store_value("message_id"),
    "subject": store_value("subject"),
    "ready": _ready,
    "policy_match": _policy,
    "queued": _queued,
    "engine_verdict": _engine(False),
    "engine_verdict_interim": _engine(True),
    "av_interim": _av(True),
    "antivirus": _av(False),
    "amp_verdict": set_fields("amp", "verdict"),
    "outbreak": set_fields("outbreak", "verdict", "detail"),
    "dkim": append_value("dkim", "result"),
    "domainkeys": append_value("domainkeys", "result"),
    "spf": append_fields("spf", "identity", "address", "result", "detail"),
    "dmarc": append_value("dmarc", "detail"),
    "sdr": append_value("sdr", "detail"),
    "attachment": append_value("attachments", "value"),
    "url_reputation": append_fields("urls", "url", "score", "condition"),
    "split": _link_child("split"),
    "rewritten": _link_child("rewritten"),
    "generated": _link_parent("generated"),
    "generated_bounce": _link_parent("bounce"),
    "reinjected": _link_parent("reinjected"),
    "too_big": append_fields("scan_issues", "engine", "size", "limit"),
    "scan_incomplete": append_fields("scan_issues", "engine", "error"),
    "scan_problem": append_fields("scan_issues", "problem"),
    "dlp": _dlp,
    "custom_log": append_value("custom_log", "text"),
    "file_analysis_queued": append_fields("files", "sha256", "filename"),
    "incoming_relay": set_fields("incoming_relay", "name", "detail"),
    "quarantined": _quarantined,
    "quarantine_tagged": _quarantine_status("tagged"),
    "euq_quarantined": _quarantine_status("quarantined"),
    "quarantine_released": _quarantine_status("released"),
    "quarantine_deleted": _quarantine_status("deleted"),
    "response": append_fields("responses", "rids", "response"),
    "pending": append_fields("pending", "rids", "until"),
    "message_aborted": _aborted,
    "message_finished": _finished,
    "delivery_start": delivery_start,
    "message_done": message_done,
    "bounced": bounced,
    "bounce_log": bounce_log,
    "delayed": delayed,
    "delay_log": delayed,
    "possible_delivery": possible,
    "ldap_reroute": append_fields("reroutes", "rid", "address", "target"),
    "ldap_reject": _ldap_reject,
    "rcpt_invalid": _invalid_rcpt,
    "mid_note": _note,
    "amp_reputation_query": append_fields("amp_files", "filename"),
    "amp_reputation": _amp_reputation,
    "amp_not_uploaded": append_value("amp_not_uploaded", "detail"),
    "av_log": append_value("av_results", "result"),
    "consolidated_event": _cef,
    "mid_unrecognized": _unrecognized,
}


# --- connection sessions -------------------------------------------------------------------------------
def _new_icid(s: Session, ev: Event) -> None:
    s.data.update(ev.data or {})
    s.data["start_ts"] = ev.ts


def _hat(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["hat"] = dict(ev.data or {})
    if f.get("sbrs") is not None:
        s.data["sbrs"] = f.get("sbrs")
    if f.get("country") is not None:
        s.data["country"] = f.get("country")


def _sbrs(s: Session, ev: Event) -> None:
    f = ev.data or NO_FIELDS
    s.data["sbrs"] = f.get("sbrs")
    if f.get("country") is not None:
        s.data["country"] = f.get("country")


def _tls(s: Session, ev: Event) -> None:
    s.data["tls"] = {k: v for k, v in (ev.data or {}).items() if k in ("status", "protocol", "cipher", "detail")}


def _lost(s: Session, ev: Event) -> None:
    s.lost_ts = ev.ts


def _close(s: Session, ev: Event) -> None:
    s.closed_ts = ev.ts


def _icid_unrecognized(s: Session, ev: Event) -> None:
    s.unrecognized += 1


CONNECTION_RULES: dict[str, Merge] = {
    "new_icid": _new_icid,
    "hat": _hat,
    "sbrs": _sbrs,
    "delayed_hat_reject": earliest("delayed_hat_reject", "detail", "Delayed HAT REJECT"),
    "icid_tls": _tls,
    "icid_tls_required": flag("tls_required_not_initiated", "detail"),
    "receiving_failed": flag("receiving_failed", "reason"),
    "icid_disconnected": flag("disconnected", "reason"),
    "icid_address": flag("address_detail", "detail"),
    "icid_rejected_rcpt": _rejected,
    "smtp_auth": set_fields("smtp_auth", "result", "user", "mechanism", "profile"),
    "connection_killed": flag("connection_killed"),
    "dhap_drop": set_fields("dhap_drop", "source_ip", "source_host", "dhap_limit", "sender_group"),
    "icid_lost": _lost,
    "icid_close": _close,
    "icid_other": _icid_unrecognized,
}

# DCID records (outbound connections): what the delivery lines of a MID copy from them.
DCID_RULES: dict[str, Merge] = {
    "new_dcid": set_fields("dcid", "interface", "destination_ip", "port"),
    "dcid_tls": _tls,
    "connection_error": set_fields("connection_error", "domain", "destination_ip", "detail"),
}

# A fixed order of the line kinds, for choices among lines of one second (the log gives no order within a
# second, and the order they arrive in must not decide): the order of the rule tables, a session's life.
_KIND_ORDER = {kind: i for i, kind in enumerate((*MESSAGE_RULES, *CONNECTION_RULES))}


def later_kind(kind: str, last: str) -> bool:
    """Whether a line of `kind` rather than one of `last`, both of a session's newest second, is its newest."""
    return not last or _KIND_ORDER.get(kind, -1) > _KIND_ORDER.get(last, -1)
