"""Merge rules: how each event kind adds to a session's `data`. One small function per kind (pure).

Message sessions (appliance + MID) and connection sessions (appliance + ICID) each have their table.
Lists that a hostile or broken sender could grow without end are capped (`LIST_CAP`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from enricher.core.event import Event
from enricher.core.sessions.session import Session

LIST_CAP = 50

# The rules read `ev.data` directly (`f.get`), not through `Event.get`: one method call less per field on
# the hottest path of the stitcher. Never written to.
_NO_FIELDS: dict[str, Any] = {}

Merge = Callable[[Session, Event], None]


_INF = float("inf")


def keep_earliest(d: dict[str, Any], key: str, ts: float | None, value: Any) -> None:
    """Set `d[key]` to `value` unless it holds one of an earlier line (by stamp, then by value): not the first
    to arrive, as a line late within the grace period must not change the choice. The chosen line's stamp
    is kept beside it (`<key>_ts`, in no document)."""
    key_ts = key + "_ts"
    if key in d:
        kept = d.get(key_ts)
        if (_INF if ts is None else ts, value) >= (_INF if kept is None else kept, d[key]):
            return
    d[key] = value
    d[key_ts] = ts  # None (a line without a stamp) sorts last; JSON has no infinity


def _append(d: dict[str, Any], key: str, value: Any) -> None:
    lst = d.get(key)
    if lst is None:
        d[key] = [value]
    elif len(lst) < LIST_CAP:
        lst.append(value)
    else:
        d[key + "_dropped"] = d.get(key + "_dropped", 0) + 1


def _set_fields(key: str, *names: str) -> Merge:
    """A rule that stores some event fields under one key (a dict)."""

    def rule(s: Session, ev: Event) -> None:
        src = ev.data or {}
        s.data[key] = {n: src[n] for n in names if n in src}

    return rule


def _append_fields(key: str, *names: str) -> Merge:
    """A rule that appends an object of some event fields to a list under one key."""

    def rule(s: Session, ev: Event) -> None:
        src = ev.data or {}
        _append(s.data, key, {n: src[n] for n in names if n in src})

    return rule


def _append_value(key: str, name: str) -> Merge:
    """A rule that appends one event field's value to a list of plain values (never mixed with objects)."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        v = f.get(name)
        if v is not None:
            _append(s.data, key, v)

    return rule


# --- message sessions ----------------------------------------------------------------------------------
def _start(s: Session, ev: Event) -> None:
    s.data["start_ts"] = ev.ts


def _mail_from(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["from"] = f.get("address", "")  # "" is the null sender (`From: <>`)
    extra = f.get("extra")
    if extra:
        s.data["from_extra"] = extra


def _rcpt(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    _append(s.data, "rcpts", [f.get("rid"), f.get("address", "")])


# Per-recipient rejects (docs/abort-taxonomy.md §2): who rejected → (abort_reason, abort_layer).
RCPT_REJECTS = (
    ("LDAPACCEPT", "rcpt_rejected_ldap"),
    ("RAT", "rcpt_rejected_rat"),
    ("Receiving Control", "rcpt_rate_limited"),
)


def _reject(s: Session, ev: Event, item: dict[str, Any]) -> None:
    """One refused recipient; the earliest refusal (`first_rejected`: [reason, by]) is the message's reason."""
    _append(s.data, "rejected", item)
    keep_earliest(s.data, "first_rejected", ev.ts, [item["reason"], item.get("by") or ""])


def _rejected(s: Session, ev: Event) -> None:
    item = {k: v for k, v in (ev.data or {}).items() if k in ("address", "by", "detail")}
    by = item.get("by", "")
    for needle, slug in RCPT_REJECTS:
        if by.startswith(needle):
            item["reason"] = slug
            break
    else:
        item["reason"] = "rcpt_rejected_other"
    _reject(s, ev, item)


def _invalid_rcpt(s: Session, ev: Event) -> None:
    """`Invalid recipient address: 'RCPT TO:<…>'`: the SMTP dialogue refused a malformed recipient."""
    f = ev.data or _NO_FIELDS
    item = {"by": "Invalid recipient address", "reason": "rcpt_rejected_other"}
    if f.get("detail"):
        item["detail"] = f.get("detail")
    _reject(s, ev, item)


def _ldap_reject(s: Session, ev: Event) -> None:
    """`LDAP: Drop|Bounce query <name> MID m RID r address a`: the LDAP accept query, run in the work queue."""
    f = ev.data or _NO_FIELDS
    by = f"LDAP {f.get('query', '')} query {f.get('name', '')}"
    _reject(s, ev, {"address": f.get("address", ""), "by": by, "reason": "rcpt_rejected_ldap"})


def _note(s: Session, ev: Event) -> None:
    """A debug, trace or notice line about the message: it joins the session's raw lines, nothing else."""


def _value(key: str) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        v = f.get("value")
        if v is not None:
            s.data[key] = v

    return rule


def _ready(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["size"] = f.get("size")
    s.data["ready_ts"] = ev.ts
    if "from" not in s.data and f.get("address") is not None:
        s.data["from"] = f.get("address")


def _policy(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    _append(s.data, "policies", {"direction": f.get("direction"), "policy": f.get("policy")})


def _queued(s: Session, ev: Event) -> None:
    s.data["queued"] = True


_ENGINE_KEYS = {"CASE": "antispam", "IMS": "antispam", "BRIGHTMAIL": "antispam", "GRAYMAIL": "graymail"}


def _engine(interim: bool) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
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
        f = ev.data or _NO_FIELDS
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
        f = ev.data or _NO_FIELDS
        _append(s.data, "children", {"mid": f.get("child"), "relation": relation})

    return rule


def _link_parent(relation: str) -> Merge:
    """`MID child generated based on MID parent` / `Reinjected MID parent as MID child`: line's MID is the child."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        s.data["parent"] = {"mid": f.get("parent"), "relation": relation}

    return rule


def _aborted(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["abort"] = {"text": f.get("reason", ""), "ts": ev.ts}


def _finished(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["finished"] = f.get("status")
    s.finished_ts = ev.ts


def _delivery(s: Session, ev: Event) -> dict[str, Any]:
    f = ev.data or _NO_FIELDS
    deliveries = s.data.setdefault("deliveries", {})
    key = str(ev.dcid)
    d = deliveries.get(key)
    if d is None:
        if len(deliveries) >= LIST_CAP:
            s.data["deliveries_dropped"] = s.data.get("deliveries_dropped", 0) + 1
            return {}
        d = deliveries[key] = {"dcid": ev.dcid, "type": f.get("ctype", "DCID")}
    return d


# A delivery's status when more than one line sets it: the most final (a `Possible Delivery:` before its
# `Message done`, a recipient delayed and another delivered on one connection), never the last to arrive.
_STATUS_RANK = {"possible_delivery": 0, "delayed": 1, "bounced": 2}  # the others (delivered, …): 3


def _status(d: dict[str, Any], status: str) -> None:
    old = d.get("status")
    if old is None or (_STATUS_RANK.get(status, 3), status) > (_STATUS_RANK.get(old, 3), old):
        d["status"] = status


def _ended(d: dict[str, Any], ts: float | None) -> None:
    if ts is not None and (d.get("end_ts") is None or ts > d["end_ts"]):
        d["end_ts"] = ts


def _delivery_start(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    d = _delivery(s, ev)
    d["start_ts"] = ev.ts
    if f.get("rids") is not None:
        d["rids"] = f.get("rids")
    extra = (f.get("extra") or "").strip()
    if extra:
        d["target"] = extra.removeprefix("to ").strip()


def _message_done(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    d = _delivery(s, ev)
    _ended(d, ev.ts)
    # RCID: handed to the appliance's own spam quarantine, not delivered to the recipient.
    status = "to_spam_quarantine" if f.get("ctype") == "RCID" else "delivered"
    if f.get("rids") is not None:
        d["rids"] = f.get("rids")
    extra = (f.get("extra") or "").strip()
    if extra.startswith("(external quarantine)"):
        status = "quarantined_external"
    _status(d, status)


_BOUNCE_FIELDS = ("rid", "code", "reason", "response", "from", "to")


def _bounce_item(ev: Event) -> dict[str, Any]:
    f = ev.data or _NO_FIELDS
    item = {k: f[k] for k in _BOUNCE_FIELDS if k in f}
    if "rids" in f:
        item["rid"] = f["rids"]  # `to RID [0, 1]`: one line for several recipients (a list in the same field)
    item["dcid"] = ev.dcid
    item["ts"] = ev.ts
    return item


def _bounced(s: Session, ev: Event) -> None:
    item = _bounce_item(ev)
    _append(s.data, "bounces", item)
    if ev.dcid is not None:
        d = _delivery(s, ev)
        _status(d, "bounced")
        _ended(d, ev.ts)


def _bounce_log(s: Session, ev: Event) -> None:
    item = {k: v for k, v in (ev.data or {}).items() if k in _BOUNCE_FIELDS}
    item["ts"] = ev.ts
    _append(s.data, "bounces", item)


def _delayed(s: Session, ev: Event) -> None:
    _append(s.data, "delays", _bounce_item(ev))
    if ev.dcid is not None:
        d = _delivery(s, ev)
        _status(d, "delayed")


def _possible(s: Session, ev: Event) -> None:
    d = _delivery(s, ev)
    _status(d, "possible_delivery")
    s.data["possible_delivery"] = True


def _quarantined(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    q = s.data.setdefault("quarantine", {})
    q["status"] = "quarantined"
    for k in ("quarantine", "reason"):
        if f.get(k):
            q[k] = f.get(k)


def _quarantine_status(status: str) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        q = s.data.setdefault("quarantine", {})
        q["status"] = status
        if f.get("quarantine"):
            q["quarantine"] = f.get("quarantine")

    return rule


def _dlp(s: Session, ev: Event) -> None:
    s.data["dlp"] = dict(ev.data or {})


# The reputation answer names the file's SHA-256 in its tail: `…, sha256 = <hex>, upload_action = …`.
_REPUTATION_SHA256 = re.compile(r"\bsha256 ?= ?([0-9A-Fa-f]{64})\b", re.I)


def _amp_reputation(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    item = {n: f[n] for n in ("filename", "disposition", "malware") if n in f}
    m = _REPUTATION_SHA256.search(f.get("detail") or "")
    if m is not None:
        item["sha256"] = m.group(1).lower()
    _append(s.data, "amp_files", item)


def _cef(s: Session, ev: Event) -> None:
    s.data["consolidated"] = dict(ev.data or {})


def _unrecognized(s: Session, ev: Event) -> None:
    s.unrecognized += 1


MESSAGE_RULES: dict[str, Merge] = {
    "start_mid": _start,
    "mail_from": _mail_from,
    "rcpt_to": _rcpt,
    "rcpt_rejected": _rejected,
    "message_id": _value("message_id"),
    "subject": _value("subject"),
    "ready": _ready,
    "policy_match": _policy,
    "queued": _queued,
    "engine_verdict": _engine(False),
    "engine_verdict_interim": _engine(True),
    "av_interim": _av(True),
    "antivirus": _av(False),
    "amp_verdict": _set_fields("amp", "verdict"),
    "outbreak": _set_fields("outbreak", "verdict", "detail"),
    "dkim": _append_value("dkim", "result"),
    "domainkeys": _append_value("domainkeys", "result"),
    "spf": _append_fields("spf", "identity", "address", "result", "detail"),
    "dmarc": _append_value("dmarc", "detail"),
    "sdr": _append_value("sdr", "detail"),
    "attachment": _append_value("attachments", "value"),
    "url_reputation": _append_fields("urls", "url", "score", "condition"),
    "split": _link_child("split"),
    "rewritten": _link_child("rewritten"),
    "generated": _link_parent("generated"),
    "generated_bounce": _link_parent("bounce"),
    "reinjected": _link_parent("reinjected"),
    "too_big": _append_fields("scan_issues", "engine", "size", "limit"),
    "scan_incomplete": _append_fields("scan_issues", "engine", "error"),
    "scan_problem": _append_fields("scan_issues", "problem"),
    "dlp": _dlp,
    "custom_log": _append_value("custom_log", "text"),
    "file_analysis_queued": _append_fields("files", "sha256", "filename"),
    "incoming_relay": _set_fields("incoming_relay", "name", "detail"),
    "quarantined": _quarantined,
    "quarantine_tagged": _quarantine_status("tagged"),
    "euq_quarantined": _quarantine_status("quarantined"),
    "quarantine_released": _quarantine_status("released"),
    "quarantine_deleted": _quarantine_status("deleted"),
    "response": _append_fields("responses", "rids", "response"),
    "pending": _append_fields("pending", "rids", "until"),
    "message_aborted": _aborted,
    "message_finished": _finished,
    "delivery_start": _delivery_start,
    "message_done": _message_done,
    "bounced": _bounced,
    "bounce_log": _bounce_log,
    "delayed": _delayed,
    "delay_log": _delayed,
    "possible_delivery": _possible,
    "ldap_reroute": _append_fields("reroutes", "rid", "address", "target"),
    "ldap_reject": _ldap_reject,
    "rcpt_invalid": _invalid_rcpt,
    "mid_note": _note,
    "amp_reputation_query": _append_fields("amp_files", "filename"),
    "amp_reputation": _amp_reputation,
    "amp_not_uploaded": _append_value("amp_not_uploaded", "detail"),
    "av_log": _append_value("av_results", "result"),
    "consolidated_event": _cef,
    "mid_unrecognized": _unrecognized,
}


# --- connection sessions -------------------------------------------------------------------------------
def _new_icid(s: Session, ev: Event) -> None:
    s.data.update(ev.data or {})
    s.data["start_ts"] = ev.ts


def _hat(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["hat"] = dict(ev.data or {})
    if f.get("sbrs") is not None:
        s.data["sbrs"] = f.get("sbrs")
    if f.get("country") is not None:
        s.data["country"] = f.get("country")


def _sbrs(s: Session, ev: Event) -> None:
    f = ev.data or _NO_FIELDS
    s.data["sbrs"] = f.get("sbrs")
    if f.get("country") is not None:
        s.data["country"] = f.get("country")


def _flag(key: str, field: str | None = None) -> Merge:
    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        s.data[key] = f.get(field, True) if field else True

    return rule


def _earliest(key: str, field: str, default: str) -> Merge:
    """Keep the value of the earliest line (see `keep_earliest`): later lines of the same kind add detail, not
    a new verdict."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or _NO_FIELDS
        keep_earliest(s.data, key, ev.ts, f.get(field) or default)

    return rule


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
    "delayed_hat_reject": _earliest("delayed_hat_reject", "detail", "Delayed HAT REJECT"),
    "icid_tls": _tls,
    "icid_tls_required": _flag("tls_required_not_initiated", "detail"),
    "receiving_failed": _flag("receiving_failed", "reason"),
    "icid_disconnected": _flag("disconnected", "reason"),
    "icid_address": _flag("address_detail", "detail"),
    "icid_rejected_rcpt": _rejected,
    "smtp_auth": _set_fields("smtp_auth", "result", "user", "mechanism", "profile"),
    "connection_killed": _flag("connection_killed"),
    "dhap_drop": _set_fields("dhap_drop", "source_ip", "source_host", "dhap_limit", "sender_group"),
    "icid_lost": _lost,
    "icid_close": _close,
    "icid_other": _icid_unrecognized,
}

# DCID records (outbound connections): what the delivery lines of a MID copy from them.
DCID_RULES: dict[str, Merge] = {
    "new_dcid": _set_fields("dcid", "interface", "destination_ip", "port"),
    "dcid_tls": _tls,
    "connection_error": _set_fields("connection_error", "domain", "destination_ip", "detail"),
}

# A fixed order of the line kinds, for choices among lines of one second (the log gives no order within a
# second, and the order they arrive in must not decide): the order of the rule tables, a session's life.
_KIND_ORDER = {kind: i for i, kind in enumerate((*MESSAGE_RULES, *CONNECTION_RULES))}


def later_kind(kind: str, last: str) -> bool:
    """Whether a line of `kind` rather than one of `last`, both of a session's newest second, is its newest."""
    return not last or _KIND_ORDER.get(kind, -1) > _KIND_ORDER.get(last, -1)
