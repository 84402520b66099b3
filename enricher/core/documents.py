"""Session → ECS-shaped document (pure).

ECS where ECS has a field (`@timestamp`, `ecs.*`, `event.*`, `observer.*`, `email.*`, `source.*`,
`destination.*`, `tls.*`, `user.*`, `network.*`, `related.*`); `email.local_id` is the ESA MID (ECS: the id
a mail server gives a message), `email.message_id` the RFC 5322 Message-ID header. Everything ESA-specific
lives under `esa.*`; the ECS fields repeat part of it (nothing under `esa.*` is dropped for them). The two
contract fields are the top-level `abort_reason` and `abort_layer`. Empty values are left out, so documents
stay small. `event.ingested` is not set here: the Elasticsearch sink stamps it when it sends the document,
so `replay`'s output stays the same from run to run. The ECS copies and their choices: `enricher/core/ecs.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from enricher.core.classify.rules import classify
from enricher.core.classify.verdict import ClassifyConfig, Verdict
from enricher.core.ecs import ECS_VERSION, attachments, destination, direction, tls_fields, verified_domain
from enricher.core.parsing.timestamps import format_iso
from enricher.core.sessions.session import MESSAGE, Session

DATASET = "cisco_esa.session"

_ACTIONS = {
    "delivered": "message-delivered",
    "queued": "message-queued",
    "done": "message-done",
    "aborted": "message-aborted",
    "dropped": "message-dropped",
    "bounced": "message-bounced",
    "deleted": "message-deleted",
    "quarantined": "message-quarantined",
    "delayed": "message-delayed",
    "not_delivered": "message-not-delivered",
    "possible_delivery": "message-possible-delivery",
    "in_progress": "message-in-progress",
    "rejected": "message-rejected",
}


@dataclass(frozen=True)
class DocumentConfig:
    """What the document builder includes."""

    keep_raw: bool = True
    classify: ClassifyConfig = ClassifyConfig()


# Elasticsearch refuses a whole bulk request holding an `_id` over 512 bytes. No host name is longer than
# 253 characters, but an envelope can name any word as the appliance: a longer one enters ids as its head and
# a digest of the whole (still deterministic); `observer.hostname` keeps the name itself.
_ID_APPLIANCE_BYTES = 256


def id_appliance(appliance: str) -> str:
    """The appliance as it enters document ids (itself, unless absurdly long)."""
    if len(appliance) <= _ID_APPLIANCE_BYTES // 4:  # the common case: fits whatever its characters
        return appliance
    b = appliance.encode("utf-8", "replace")
    if len(b) <= _ID_APPLIANCE_BYTES:
        return appliance
    return f"{b[:64].decode('utf-8', 'ignore')}~{hashlib.sha256(b).hexdigest()[:24]}"


def session_id(s: Session) -> str:
    """The deterministic document id: appliance + MID (or ICID) + first-seen time (+ `late`, see LATE)."""
    tag = "m" if s.kind == MESSAGE else "c"
    if s.late:  # a late line of a session written and forgotten: never that session's id
        return f"{id_appliance(s.appliance)}:{tag}{s.ident}:{int(s.first_ts)}:late"
    return f"{id_appliance(s.appliance)}:{tag}{s.ident}:{int(s.first_ts)}"


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    # Keep 0 and False, drop None, "", [] and {} (`v == 0` is true for 0, 0.0 and False only).
    return {k: v for k, v in d.items() if v or v == 0}


# The builders below add a field only when `_prune` would keep it, instead of building a dict of mostly
# None and pruning it: most data keys are absent from most sessions, and this runs once per document.
# Field order is the order of the code (it is the order of the document where a sink does not sort keys).


def _copy(out: dict[str, Any], src: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> None:
    """out[name] = src[key] for each (name, key) that `src` has with a value `_prune` keeps, in order."""
    for name, key in fields:
        if key in src:
            v = src[key]
            if v or v == 0:
                out[name] = v


def _put(out: dict[str, Any], name: str, v: Any) -> None:
    """out[name] = v if `_prune` would keep it."""
    if v or v == 0:
        out[name] = v


def _same(*keys: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, k) for k in keys)


# The largest `float` (32-bit) Elasticsearch stores; beyond it the whole document would be refused.
_FLOAT_MAX = 3.4028234663852886e38


def _sbrs(value: Any) -> float | None:
    """The score as a number when it is one the `float` field holds (the text stays in `sbrs_raw`)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if -_FLOAT_MAX <= v <= _FLOAT_MAX else None  # also false for NaN


_CONN_IFACE = _same("interface", "interface_ip", "reverse_dns")
_CONN_HAT = (("sender_group", "sender_group"), ("hat_action", "action"), ("hat_match", "match"))
_CONN_ENDINGS = _same(
    "receiving_failed",
    "disconnected",
    "delayed_hat_reject",
    "dhap_drop",
    "tls_required_not_initiated",
    "connection_killed",
)


def _connection_fields(c: Session) -> dict[str, Any]:
    d = c.data
    out: dict[str, Any] = {}
    if c.ident > 0:
        out["icid"] = c.ident
    _copy(out, d, _CONN_IFACE)
    verified = d.get("verified")
    if verified is not None:
        out["reverse_dns_verified"] = verified.lower() == "yes"
    hat = d.get("hat")
    if hat:
        _copy(out, hat, _CONN_HAT)
    sbrs = d.get("sbrs")
    if sbrs is not None:
        v = _sbrs(sbrs)
        if v is not None:
            out["sbrs"] = v
        _put(out, "sbrs_raw", sbrs)
    _put(out, "country", d.get("country"))
    tls = d.get("tls")
    if tls:
        _put(out, "tls", _prune(tls))
    _put(out, "smtp_auth", d.get("smtp_auth"))
    if d.get("start_ts") is not None:
        out["start"] = format_iso(d["start_ts"])
    if c.lost_ts is not None:
        out["lost"] = True
        out["lost_time"] = format_iso(c.lost_ts)
    if c.closed_ts is not None:
        out["closed_time"] = format_iso(c.closed_ts)
    _copy(out, d, _CONN_ENDINGS)
    rejected = d.get("rejected")
    if rejected:
        out["rejected_recipients"] = rejected
    if c.mids:
        out["message_count"] = len(c.mids)
    return out


def _deliveries(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for d in sorted((data.get("deliveries") or {}).values(), key=lambda d: d.get("dcid") or 0):
        item = dict(d)
        for k in ("start_ts", "end_ts"):
            v = item.pop(k, None)
            if v is not None:
                item[k[:-3] + "_time"] = format_iso(v)
        if item.get("port") is not None:
            item["port"] = int(item["port"])
        out.append(_prune(item))
    return out


def _timed(items: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if not items:
        return None
    out = []
    for it in items:
        it = dict(it)
        ts = it.pop("ts", None)
        if ts is not None:
            it["time"] = format_iso(ts)
        out.append(_prune(it))
    return out


_VERDICTS = _same("antispam", "antivirus", "amp", "graymail", "outbreak", "dlp")
_AUTH = _same("spf", "dkim", "domainkeys", "dmarc")
_MSG_STATE = _same("queued", "finished", "generated_by_appliance", "policies")
_MSG_DETAIL = _same(
    "sdr",
    "urls",
    "files",
    "amp_files",
    "amp_not_uploaded",
    "av_results",
    "scan_issues",
    "custom_log",
    "incoming_relay",
    "quarantine",
    "parent",
    "children",
)
_MSG_TAIL = _same("pending", "responses", "reroutes", "consolidated")


_OBSERVER_INFO = (("serial_number", "serial"), ("version", "version"))
_EMAIL = _same("message_id", "subject")


def _envelope(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sender = d.get("from")
    _put(out, "from", sender)
    if sender == "":
        out["null_sender"] = True
    _put(out, "from_extra", d.get("from_extra"))
    rcpts = d.get("rcpts")
    if rcpts:
        out["recipients"] = [
            {"rid": r, "address": a} if a and (r or r == 0) else _prune({"rid": r, "address": a}) for r, a in rcpts
        ]
    rejected = d.get("rejected")
    if rejected:
        out["rejected_recipients"] = rejected
    return out


def _message_fields(s: Session, out: dict[str, Any]) -> None:
    """Add the message's own fields to `out` (the document's `esa` object)."""
    d = s.data
    out["mid"] = s.ident
    _put(out, "envelope", _envelope(d))
    _put(out, "size", d.get("size"))
    if d.get("ready_ts") is not None:
        out["ready_time"] = format_iso(d["ready_ts"])
    _copy(out, d, _MSG_STATE)
    verdicts: dict[str, Any] = {}
    _copy(verdicts, d, _VERDICTS)
    engines = d.get("engines")
    if engines:
        verdicts["other_engines"] = [{"engine": k, "verdict": v} for k, v in engines.items()]
    if verdicts:
        out["verdicts"] = verdicts
    auth: dict[str, Any] = {}
    _copy(auth, d, _AUTH)
    if auth:
        out["auth"] = auth
    _copy(out, d, _MSG_DETAIL)
    if d.get("deliveries"):
        out["deliveries"] = _deliveries(d)
    bounces = _timed(d.get("bounces"))
    if bounces:
        out["bounces"] = bounces
    delays = _timed(d.get("delays"))
    if delays:
        out["delays"] = delays
    _copy(out, d, _MSG_TAIL)


def build_document(
    s: Session, cfg: DocumentConfig, appliance_info: dict[str, str] | None = None, verdict: Verdict | None = None
) -> dict[str, Any]:
    """Build the document of one closed session (message or connection); `verdict` if already classified."""
    if verdict is None:
        verdict = classify(s, cfg.classify)
    is_msg = s.kind == MESSAGE
    conn = s.conn if is_msg else s
    other = conn if conn is not None and conn is not s else None  # a message's connection
    cdata = conn.data if conn is not None else {}
    start = s.first_ts
    if conn is not None and conn.first_ts < start:
        start = conn.first_ts
    end = max(s.last_ts, other.last_ts) if other is not None else s.last_ts
    source_ip = cdata.get("source_ip")
    source_domain = verified_domain(cdata)
    d = s.data
    start_iso = format_iso(start)
    # Every value here is a non-empty string or a number: nothing for `_prune` to drop.
    event = {
        "id": session_id(s),
        "kind": "event",
        "category": ["email"] if is_msg else ["email", "network"],
        "type": ["info"] if is_msg else ["connection"],
        "dataset": DATASET,
        "module": "esa_enricher",
        "start": start_iso,
        "end": format_iso(end),
        "duration": int(round((end - start) * 1e9)),
        "outcome": verdict.outcome,
        "action": _ACTIONS.get(verdict.disposition, f"message-{verdict.disposition}")
        if is_msg
        else f"connection-{verdict.disposition}",
    }
    observer: dict[str, Any] = {}
    if s.appliance:
        observer["hostname"] = s.appliance
    observer["vendor"] = "Cisco"
    observer["product"] = "Secure Email Gateway"
    observer["type"] = "email-gateway"
    if appliance_info:
        _copy(observer, appliance_info, _OBSERVER_INFO)
    doc: dict[str, Any] = {
        "@timestamp": start_iso,
        "ecs": {"version": ECS_VERSION},
        "event": event,
        "observer": observer,
    }
    if verdict.abort_reason:
        doc["abort_reason"] = verdict.abort_reason
    if verdict.abort_layer:
        doc["abort_layer"] = verdict.abort_layer
    hashes: list[str] = []
    if is_msg:
        email: dict[str, Any] = {"local_id": str(s.ident)}
        _copy(email, d, _EMAIL)
        if d.get("from"):
            email["from"] = {"address": [d["from"]]}
        rcpt_addrs = [a for _, a in (d.get("rcpts") or []) if a]
        if rcpt_addrs:
            email["to"] = {"address": rcpt_addrs}
        if "attachments" in d or "files" in d or "amp_files" in d or "amp_not_uploaded" in d:
            files, hashes = attachments(d)
            if files:
                email["attachments"] = files
        way = direction(d, cdata.get("hat"))
        if way is not None:
            email["direction"] = way
        doc["email"] = email
    if source_ip or source_domain:
        doc["source"] = _prune({"ip": source_ip, "domain": source_domain})
    deliveries = d.get("deliveries")
    if deliveries:
        dest = destination(deliveries)
        if dest:
            doc["destination"] = dest
    doc["network"] = {"protocol": "smtp"}
    tls = cdata.get("tls")
    if tls:
        ecs_tls = tls_fields(tls)
        if ecs_tls:
            doc["tls"] = ecs_tls
    auth = cdata.get("smtp_auth")
    user = auth.get("user") if auth else None
    if user:
        doc["user"] = {"name": user}
    # Sorted sets; the usual shapes (no delivery; at most two host names) without building a set and sorting it.
    related: dict[str, Any] = {}
    if deliveries:
        ips = {x["destination_ip"] for x in deliveries.values() if x.get("destination_ip")}
        if source_ip:
            ips.add(source_ip)
        if ips:
            related["ip"] = sorted(ips)
    elif source_ip:
        related["ip"] = [source_ip]
    host = s.appliance
    if host and source_domain and source_domain != host:
        related["hosts"] = [host, source_domain] if host < source_domain else [source_domain, host]
    elif host or source_domain:
        related["hosts"] = [host or source_domain]
    if user:
        related["user"] = [user]
    if hashes:
        related["hash"] = sorted(hashes)
    if related:
        doc["related"] = related
    session: dict[str, Any] = {"kind": s.kind}
    if s.state:
        session["state"] = s.state
    if other is not None:
        session["lines"] = s.nlines + other.nlines
        unrecognized = s.unrecognized + other.unrecognized
    else:
        session["lines"] = s.nlines
        unrecognized = s.unrecognized
    if unrecognized:
        session["unrecognized_lines"] = unrecognized
    if s.emitted > 1:
        session["writes"] = s.emitted
    esa: dict[str, Any] = {"session": session}
    if verdict.disposition:
        esa["disposition"] = verdict.disposition
    if verdict.evidence:
        esa["abort"] = {"evidence": verdict.evidence}
    if conn is not None:
        connection = _connection_fields(conn)
        if connection:
            esa["connection"] = connection
    icid = conn.ident if conn is not None else None
    if icid is not None and icid > 0:
        esa["icid"] = icid
    if is_msg:
        _message_fields(s, esa)
    if cfg.keep_raw:
        raw = s.raw_lines()
        if raw:
            esa["raw"] = raw
    doc["esa"] = esa
    return doc
