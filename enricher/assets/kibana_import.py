"""`setup --kibana`: import the saved-object bundle into Kibana over HTTP or TLS, and report each object's result.

The request is `POST <kibana>[/s/<space>]/api/saved_objects/_import?overwrite=true&createNewCopies=false` with the
header `kbn-xsrf: true` and the bundle as the multipart field `file`. The connection settings are `kibana.*`
(`KibanaSettings`, the same TLS and auth model as `elasticsearch.*`): a CA file, a verify switch, or a pinned
SHA-256 certificate fingerprint (checked right after the handshake, before anything is sent), then an API key or
basic auth. Secrets go into the Authorization header only, never into a message or a log line.

Ids are kept (`createNewCopies=false`): the dashboard's links and bookmarks point at them. Kibana (8.0+) keeps the
id of a dashboard, search, visualization or Lens object unique across all spaces; importing one whose id already
lives in another space makes Kibana give it a new id (`destinationId`). The import reports that as an error instead
of accepting objects under ids nobody links to.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from enricher.assets.kibana import BUNDLE
from enricher.config import KibanaSettings
from enricher.errors import EnricherError

IMPORT_QUERY = "overwrite=true&createNewCopies=false"


class KibanaImportError(EnricherError):
    """The import did not happen, or not for every object (TLS, credentials, HTTP error, per-object errors, new ids)."""


def multipart_body(path: Path, boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with the file in the field `file` (what the import API reads); returns (body, content type)."""
    boundary = boundary or f"esa-enricher-{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def import_path(space: str | None) -> str:
    """The request path of the import into `space` (None: the default space)."""
    prefix = f"/s/{quote(space, safe='')}" if space else ""
    return f"{prefix}/api/saved_objects/_import?{IMPORT_QUERY}"


def auth_header(kb: KibanaSettings) -> str | None:
    """The Authorization header value (API key first, else basic auth), or None."""
    if kb.api_key is not None:
        return f"ApiKey {kb.api_key.get_secret_value()}"
    if kb.username is not None:
        password = kb.password.get_secret_value() if kb.password is not None else ""
        return "Basic " + base64.b64encode(f"{kb.username}:{password}".encode()).decode()
    return None


def tls_context(kb: KibanaSettings) -> ssl.SSLContext:
    """The client TLS context: the CA file (or the system's), no verification, or none but the fingerprint pin."""
    if kb.ssl_assert_fingerprint or not kb.verify_certs:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # a pin replaces the chain check (as elasticsearch-py does)
        return ctx
    try:
        return ssl.create_default_context(cafile=kb.ca_certs)
    except (OSError, ssl.SSLError) as exc:
        raise KibanaImportError(f"kibana.ca_certs: cannot load {kb.ca_certs}: {exc}") from None


def _normal_fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


def _connect(kb: KibanaSettings, url: str) -> http.client.HTTPConnection:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise KibanaImportError(f"kibana.url: not an http(s) URL: {url}")
    if u.scheme == "http":
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=kb.request_timeout_seconds)
        conn.connect()
        return conn
    conn = http.client.HTTPSConnection(
        u.hostname, u.port or 443, timeout=kb.request_timeout_seconds, context=tls_context(kb)
    )
    try:
        conn.connect()
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        hint = "set kibana.ca_certs to the CA that issued it" if not kb.ca_certs else f"not issued by {kb.ca_certs}?"
        raise KibanaImportError(
            f"Kibana's TLS certificate at {url} is not trusted: {exc.verify_message} ({hint})"
        ) from None
    if kb.ssl_assert_fingerprint:
        der = conn.sock.getpeercert(binary_form=True) if conn.sock is not None else None
        seen = hashlib.sha256(der or b"").hexdigest()
        if seen != _normal_fingerprint(kb.ssl_assert_fingerprint):
            conn.close()
            raise KibanaImportError(
                f"Kibana's TLS certificate at {url} has the SHA-256 fingerprint {seen}, not the one "
                "kibana.ssl_assert_fingerprint pins: nothing was sent"
            )
    return conn


def _post(kb: KibanaSettings, url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        conn = _connect(kb, url)
    except ssl.SSLError as exc:
        raise KibanaImportError(f"TLS handshake with Kibana at {url} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise KibanaImportError(f"cannot reach Kibana at {url}: {exc.strerror or exc}") from None
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError as exc:
        raise KibanaImportError(f"Kibana at {url} did not answer the import: {exc}") from None
    finally:
        conn.close()


def _object_results(answer: dict[str, Any], space: str) -> list[dict[str, Any]]:
    """One entry per imported object: type, id, result; raises on errors and on ids Kibana replaced."""
    problems = []
    for err in answer.get("errors") or []:
        e = err.get("error") or {}
        detail = e.get("type", "error")
        if e.get("references"):
            detail += " " + ", ".join(f"{r.get('type')}/{r.get('id')}" for r in e["references"])
        problems.append(f"{err.get('type')}/{err.get('id')}: {detail}")
    results = []
    for ok in answer.get("successResults") or []:
        new_id = ok.get("destinationId")
        if new_id and new_id != ok.get("id"):
            problems.append(
                f"{ok.get('type')}/{ok.get('id')}: Kibana gave it the new id {new_id} in space {space!r} (an object "
                "with this id exists in another space; ids are unique across spaces)"
            )
        results.append({"type": ok.get("type"), "id": ok.get("id"), "result": "overwritten" if ok.get("overwrite") else "created"})
    if problems or not answer.get("success", False):
        raise KibanaImportError("Kibana import failed for " + ("; ".join(problems) or json.dumps(answer)[:2000]))
    return results


def import_bundle(kb: KibanaSettings, path: Path = BUNDLE) -> dict[str, Any]:
    """Import the bundle into `kb.url` (space `kb.space`): a report of each object's result; raises KibanaImportError."""
    if not kb.url:
        raise KibanaImportError("kibana.url is not set (give setup --kibana URL)")
    body, content_type = multipart_body(path)
    headers = {"kbn-xsrf": "true", "Content-Type": content_type, "Accept": "application/json"}
    if (auth := auth_header(kb)) is not None:
        headers["Authorization"] = auth
    base_path = urlsplit(kb.url).path.rstrip("/")  # Kibana behind a proxy's path (server.basePath)
    status, raw = _post(kb, kb.url, base_path + import_path(kb.space), body, headers)
    text = raw.decode("utf-8", "replace")
    if status in (401, 403):
        who = "the API key" if kb.api_key is not None else f"user {kb.username!r}" if kb.username else "no credentials"
        raise KibanaImportError(f"Kibana at {kb.url} refused {who} (HTTP {status}): {text[:500]}")
    if status >= 300:
        raise KibanaImportError(f"Kibana answered HTTP {status} to the import at {kb.url}: {text[:2000]}")
    try:
        answer = json.loads(text or "{}")
    except ValueError:
        raise KibanaImportError(f"Kibana at {kb.url} answered the import with something not JSON: {text[:200]!r}") from None
    space = kb.space or "default"
    objects = _object_results(answer, space)
    return {"url": kb.url, "space": space, "imported": len(objects), "objects": objects}
