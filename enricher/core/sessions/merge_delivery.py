"""Merge rules of a message's delivery lines (`Delivery start`, `Message done`, bounces, delays, `Possible
Delivery`): one record per delivery connection (DCID) under `deliveries`. Pure."""

from __future__ import annotations

from typing import Any

from enricher.core.event import Event
from enricher.core.sessions.merge_base import LIST_CAP, NO_FIELDS, append
from enricher.core.sessions.session import Session


def _delivery(s: Session, ev: Event) -> dict[str, Any]:
    f = ev.data or NO_FIELDS
    deliveries: dict[str, dict[str, Any]] = s.data.setdefault("deliveries", {})
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


def delivery_start(s: Session, ev: Event) -> None:
    """`Delivery start DCID n MID m to RID [...]`: a delivery attempt on a connection begins."""
    f = ev.data or NO_FIELDS
    d = _delivery(s, ev)
    d["start_ts"] = ev.ts
    if f.get("rids") is not None:
        d["rids"] = f.get("rids")
    extra = (f.get("extra") or "").strip()
    if extra:
        d["target"] = extra.removeprefix("to ").strip()


def message_done(s: Session, ev: Event) -> None:
    """`Message done DCID n MID m to RID [...]`: delivered (or handed to a quarantine)."""
    f = ev.data or NO_FIELDS
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
    f = ev.data or NO_FIELDS
    item = {k: f[k] for k in _BOUNCE_FIELDS if k in f}
    if "rids" in f:
        item["rid"] = f["rids"]  # `to RID [0, 1]`: one line for several recipients (a list in the same field)
    item["dcid"] = ev.dcid
    item["ts"] = ev.ts
    return item


def bounced(s: Session, ev: Event) -> None:
    """`Bounced: DCID n MID m to RID r - code - reason`: a hard bounce on a delivery connection."""
    item = _bounce_item(ev)
    append(s.data, "bounces", item)
    if ev.dcid is not None:
        d = _delivery(s, ev)
        _status(d, "bounced")
        _ended(d, ev.ts)


def bounce_log(s: Session, ev: Event) -> None:
    """`Bounced: m:r …` (the bounce log's shape): a bounce that names no delivery connection."""
    item = {k: v for k, v in (ev.data or {}).items() if k in _BOUNCE_FIELDS}
    item["ts"] = ev.ts
    append(s.data, "bounces", item)


def delayed(s: Session, ev: Event) -> None:
    """`Delayed: DCID n MID m …` or the bounce log's `Delayed: m:r …`: a soft bounce, retried later."""
    append(s.data, "delays", _bounce_item(ev))
    if ev.dcid is not None:
        d = _delivery(s, ev)
        _status(d, "delayed")


def possible(s: Session, ev: Event) -> None:
    """`Possible Delivery`: the connection broke after the data was sent; it may have been delivered."""
    d = _delivery(s, ev)
    _status(d, "possible_delivery")
    s.data["possible_delivery"] = True
