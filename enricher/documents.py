"""Session → ECS-shaped document (pure).

ECS where ECS has a field (`@timestamp`, `event.*`, `observer.*`, `email.*`, `source.*`, `related.*`);
`email.local_id` is the ESA MID (ECS: the id a mail server gives a message), `email.message_id` the
RFC 5322 Message-ID header. Everything ESA-specific lives under `esa.*`; the two contract fields are the
top-level `abort_reason` and `abort_layer`. Empty values are left out, so documents stay small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from enricher.classify.rules import ClassifyConfig, Verdict, classify
from enricher.parsing.timestamps import format_iso
from enricher.sessions.session import MESSAGE, Session

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


def session_id(s: Session) -> str:
    """The deterministic document id: appliance + MID (or ICID) + first-seen time."""
    tag = "m" if s.kind == MESSAGE else "c"
    return f"{s.appliance}:{tag}{s.ident}:{int(s.first_ts)}"


def _prune(d: dict[str, Any]) -> dict[str, Any]:
    # Keep 0 and False, drop None, "", [] and {} (`v == 0` is true for 0, 0.0 and False only).
    return {k: v for k, v in d.items() if v or v == 0}


def _sbrs(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _connection_fields(c: Session) -> dict[str, Any]:
    d = c.data
    hat = d.get("hat") or {}
    verified = d.get("verified")
    tls = d.get("tls")
    return _prune(
        {
            "icid": c.ident if c.ident > 0 else None,
            "interface": d.get("interface"),
            "interface_ip": d.get("interface_ip"),
            "reverse_dns": d.get("reverse_dns"),
            "reverse_dns_verified": None if verified is None else verified.lower() == "yes",
            "sender_group": hat.get("sender_group"),
            "hat_action": hat.get("action"),
            "hat_match": hat.get("match"),
            "sbrs": _sbrs(d.get("sbrs")),
            "sbrs_raw": d.get("sbrs"),
            "country": d.get("country"),
            "tls": _prune(dict(tls)) if tls else None,
            "smtp_auth": d.get("smtp_auth"),
            "start": format_iso(d["start_ts"]) if d.get("start_ts") is not None else None,
            "lost": c.lost_ts is not None or None,
            "lost_time": format_iso(c.lost_ts) if c.lost_ts is not None else None,
            "closed_time": format_iso(c.closed_ts) if c.closed_ts is not None else None,
            "receiving_failed": d.get("receiving_failed"),
            "disconnected": d.get("disconnected"),
            "delayed_hat_reject": d.get("delayed_hat_reject"),
            "dhap_drop": d.get("dhap_drop"),
            "tls_required_not_initiated": d.get("tls_required_not_initiated"),
            "connection_killed": d.get("connection_killed"),
            "rejected_recipients": d.get("rejected"),
            "message_count": len(c.mids) if c.mids else None,
        }
    )


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


def _verdicts(data: dict[str, Any]) -> dict[str, Any]:
    engines = data.get("engines")
    return _prune(
        {
            "antispam": data.get("antispam"),
            "antivirus": data.get("antivirus"),
            "amp": data.get("amp"),
            "graymail": data.get("graymail"),
            "outbreak": data.get("outbreak"),
            "dlp": data.get("dlp"),
            "other_engines": [{"engine": k, "verdict": v} for k, v in engines.items()] if engines else None,
        }
    )


def _message_fields(s: Session) -> dict[str, Any]:
    d = s.data
    rcpts = d.get("rcpts") or []
    return _prune(
        {
            "mid": s.ident,
            "envelope": _prune(
                {
                    "from": d.get("from"),
                    "null_sender": d.get("from") == "" or None,
                    "from_extra": d.get("from_extra"),
                    "recipients": [_prune({"rid": r, "address": a}) for r, a in rcpts],
                    "rejected_recipients": d.get("rejected"),
                }
            ),
            "size": d.get("size"),
            "ready_time": format_iso(d["ready_ts"]) if d.get("ready_ts") is not None else None,
            "queued": d.get("queued"),
            "finished": d.get("finished"),
            "generated_by_appliance": d.get("generated_by_appliance"),
            "policies": d.get("policies"),
            "verdicts": _verdicts(d),
            "auth": _prune(
                {"spf": d.get("spf"), "dkim": d.get("dkim"), "domainkeys": d.get("domainkeys"), "dmarc": d.get("dmarc")}
            ),
            "sdr": d.get("sdr"),
            "urls": d.get("urls"),
            "files": d.get("files"),
            "amp_files": d.get("amp_files"),
            "amp_not_uploaded": d.get("amp_not_uploaded"),
            "av_results": d.get("av_results"),
            "scan_issues": d.get("scan_issues"),
            "custom_log": d.get("custom_log"),
            "incoming_relay": d.get("incoming_relay"),
            "quarantine": d.get("quarantine"),
            "parent": d.get("parent"),
            "children": d.get("children"),
            "deliveries": _deliveries(d),
            "bounces": _timed(d.get("bounces")),
            "delays": _timed(d.get("delays")),
            "pending": d.get("pending"),
            "responses": d.get("responses"),
            "reroutes": d.get("reroutes"),
            "consolidated": d.get("consolidated"),
        }
    )


def build_document(
    s: Session, cfg: DocumentConfig, appliance_info: dict[str, str] | None = None, verdict: Verdict | None = None
) -> dict[str, Any]:
    """Build the document of one closed session (message or connection); `verdict` if already classified."""
    if verdict is None:
        verdict = classify(s, cfg.classify)
    conn = s.conn if s.kind == MESSAGE else s
    cdata = conn.data if conn is not None else {}
    start = s.first_ts
    if conn is not None and conn.first_ts < start:
        start = conn.first_ts
    end = max(s.last_ts, conn.last_ts if conn is not None and conn is not s else s.last_ts)
    source_ip = cdata.get("source_ip")
    rdns = cdata.get("reverse_dns")
    source_domain = rdns if rdns and rdns.lower() != "unknown" else None
    d = s.data
    is_msg = s.kind == MESSAGE
    rcpt_addrs = [a for _, a in (d.get("rcpts") or []) if a]
    dest_ips = sorted({x["destination_ip"] for x in (d.get("deliveries") or {}).values() if x.get("destination_ip")})
    info = appliance_info or {}
    raw = s.raw_lines() if cfg.keep_raw else None
    doc: dict[str, Any] = {
        "@timestamp": format_iso(start),
        "event": _prune(
            {
                "id": session_id(s),
                "kind": "event",
                "category": ["email"] if is_msg else ["email", "network"],
                "type": ["info"] if is_msg else ["connection"],
                "dataset": DATASET,
                "module": "esa_enricher",
                "start": format_iso(start),
                "end": format_iso(end),
                "duration": int(round((end - start) * 1e9)),
                "outcome": verdict.outcome,
                "action": _ACTIONS.get(verdict.disposition, f"message-{verdict.disposition}")
                if is_msg
                else f"connection-{verdict.disposition}",
            }
        ),
        "observer": _prune(
            {
                "hostname": s.appliance,
                "vendor": "Cisco",
                "product": "Secure Email Gateway",
                "type": "email-gateway",
                "serial_number": info.get("serial"),
                "version": info.get("version"),
            }
        ),
        "abort_reason": verdict.abort_reason,
        "abort_layer": verdict.abort_layer,
    }
    if is_msg:
        doc["email"] = _prune(
            {
                "local_id": str(s.ident),
                "message_id": d.get("message_id"),
                "subject": d.get("subject"),
                "from": {"address": [d["from"]]} if d.get("from") else None,
                "to": {"address": rcpt_addrs} if rcpt_addrs else None,
                "attachments": [{"file": {"name": n}} for n in d.get("attachments") or []] or None,
            }
        )
    if source_ip or source_domain:
        doc["source"] = _prune({"ip": source_ip, "domain": source_domain})
    related_ip = sorted({ip for ip in [source_ip, *dest_ips] if ip})
    related_hosts = sorted({h for h in [s.appliance, source_domain] if h})
    doc["related"] = _prune({"ip": related_ip, "hosts": related_hosts})
    esa: dict[str, Any] = {
        "session": _prune(
            {
                "kind": s.kind,
                "state": s.state,
                "lines": s.nlines + (conn.nlines if conn is not None and conn is not s else 0),
                "unrecognized_lines": (
                    s.unrecognized + (conn.unrecognized if conn is not None and conn is not s else 0)
                )
                or None,
                "writes": s.emitted if s.emitted > 1 else None,
            }
        ),
        "disposition": verdict.disposition,
        "abort": {"evidence": verdict.evidence} if verdict.evidence else None,
        "connection": _connection_fields(conn) if conn is not None else None,
    }
    if is_msg:
        esa["icid"] = conn.ident if conn is not None and conn.ident > 0 else None
        esa.update(_message_fields(s))
    else:
        esa["icid"] = s.ident if s.ident > 0 else None
    if raw is not None:
        esa["raw"] = raw
    doc["esa"] = _prune(esa)
    return _prune(doc)
