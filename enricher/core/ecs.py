"""The ECS fields that repeat ESA data the document already has under `esa.*` (used by documents.py).

Each function takes the session data as merge.py stores it and returns the ECS value, or an empty value when
there is nothing to say. Where ECS is single-valued or a value is not to be trusted (docs/ecs.md says more):
- `source.domain` (and `related.hosts`) only from reverse DNS the appliance verified: whoever owns an address
  writes its PTR record, so an unverified name would let a sender choose what rules aggregate on. The
  unverified name stays in `esa.connection.reverse_dns` (with `reverse_dns_verified: false`).
- `tls.*` is the TLS of the inbound connection (the hop `source.*` describes); each delivery's TLS stays in
  `esa.deliveries[].tls` (a message can leave over several connections, each with its own TLS).
- `destination.ip`/`port` are those of the last delivery attempt (highest DCID); every attempt stays in
  `esa.deliveries`, and every destination address is in `related.ip`.
- `email.direction` is the policy table the message matched (`inbound`/`outbound`), else what its
  connection's mail flow policy implies (RELAY: outbound, ACCEPT: inbound), else absent.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# The ECS release the documents follow (`ecs.version`): every ECS field they carry is defined in it.
ECS_VERSION = "8.16.0"

_TLS_PROTOCOL = re.compile(r"(TLS|SSL)v?(\d{1,2})(?:[._](\d{1,2}))?", re.I)
# AsyncOS picks the policy table from the mail flow policy: RELAY is outgoing mail, ACCEPT incoming.
_HAT_DIRECTION = {"RELAY": "outbound", "ACCEPT": "inbound"}
_DIRECTIONS = frozenset(("inbound", "outbound"))
_SHA256_HEX = 64
_NOT_UPLOADED_SHA256 = re.compile(r"SHA256\[([0-9A-Fa-f]{64})\]")


def verified_domain(conn: dict[str, Any]) -> str | None:
    """The connection's reverse DNS name when the appliance verified it (`verified yes`), else None."""
    name = conn.get("reverse_dns")
    verified = conn.get("verified")
    if not name or verified is None or verified.lower() != "yes" or name.lower() == "unknown":
        return None
    return str(name)


@lru_cache(maxsize=64)
def _tls_version(protocol: str) -> tuple[str, str] | None:
    """`TLSv1.2` → ("tls", "1.2"), `TLSv1` → ("tls", "1.0"), `SSLv3` → ("ssl", "3.0"); None if no version."""
    m = _TLS_PROTOCOL.fullmatch(protocol.strip())
    if m is None:
        return None
    return m.group(1).lower(), f"{int(m.group(2))}.{int(m.group(3) or 0)}"


def tls_fields(t: dict[str, Any]) -> dict[str, Any]:
    """ECS `tls.*` of a connection's TLS record (`esa.connection.tls`); the cipher as the appliance names it."""
    out: dict[str, Any] = {}
    status = t.get("status")
    if status:
        out["established"] = status == "success"
    protocol = t.get("protocol")
    if isinstance(protocol, str):
        version = _tls_version(protocol)
        if version is not None:
            out["version_protocol"], out["version"] = version
    cipher = t.get("cipher")
    if cipher:
        out["cipher"] = cipher
    return out


def direction(d: dict[str, Any], hat: dict[str, Any] | None) -> str | None:
    """ECS `email.direction` of a message (see the module docstring), or None."""
    for p in d.get("policies") or ():
        value = (p.get("direction") or "").lower()
        if value in _DIRECTIONS:
            return value
    if hat:
        return _HAT_DIRECTION.get((hat.get("action") or "").upper())
    return None


def _hashed_files(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """(SHA-256, file name or None) of each line of a message that names a file's hash: file analysis, AMP."""
    out: list[tuple[str, Any]] = []
    for key in ("files", "amp_files"):  # `MID n SHA … filename …`, AMP reputation answers (`… sha256 = …`)
        for f in d.get(key) or ():
            sha = f.get("sha256") if isinstance(f, dict) else None
            if isinstance(sha, str) and len(sha) == _SHA256_HEX:  # a cut line's hex is no SHA-256
                out.append((sha.lower(), f.get("filename")))
    for detail in d.get("amp_not_uploaded") or ():  # `File SHA256[<hex>], File mime[…]`: no file name
        m = _NOT_UPLOADED_SHA256.search(detail) if isinstance(detail, str) else None
        if m is not None:
            out.append((m.group(1).lower(), None))
    return out


def attachments(d: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """ECS `email.attachments` (attachment names, with the SHA-256 of the file-analysis and AMP lines) and those
    hashes.

    A hash joins the attachment of the same name; a file no attachment line names (or a second file of one
    name) is an attachment of its own; a hash seen again (the same file in several lines) adds nothing. Hex that
    is not 64 digits long (a cut line) is no SHA-256: it stays in `esa.files` / `esa.amp_*` only.
    """
    out = [{"file": {"name": n}} for n in d.get("attachments") or ()]
    files = _hashed_files(d)
    if not files:
        return out, []
    by_name = {a["file"]["name"]: a["file"] for a in out}
    hashes: list[str] = []
    for sha, name in files:
        if sha in hashes:
            continue
        hashes.append(sha)
        target = by_name.get(name) if name else None
        if target is None or "hash" in target:
            target = {"name": name} if name else {}
            out.append({"file": target})
        target["hash"] = {"sha256": sha}
    return out, hashes


def _dcid(delivery: dict[str, Any]) -> int:
    return delivery.get("dcid") or 0


def destination(deliveries: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """ECS `destination.*` of a message: its last delivery attempt (highest DCID)."""
    if len(deliveries) == 1:  # the usual case
        last = next(iter(deliveries.values()))
    else:
        last = max(deliveries.values(), key=_dcid)
    out: dict[str, Any] = {}
    ip = last.get("destination_ip")
    if ip:
        out["ip"] = ip
    port = last.get("port")
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return out
        if 0 <= port <= 65535:  # a port, not whatever digits a damaged line held
            out["port"] = port
    return out
