"""Kibana saved objects: the per-object files in `pipelines/kibana/<type>/<id>.json`, their NDJSON bundle, its import.

The per-object files keep Kibana's JSON-in-a-string attributes (`searchSourceJSON`, `panelsJSON`,
`optionsJSON`) as plain JSON so they can be reviewed; `bundle_text()` turns them into the strings Kibana
exports and imports, one object per line, dependencies first (the order of Kibana's own exports; its import
does not depend on the order). `python -m enricher.assets.kibana` rewrites `pipelines/kibana/esa-enricher.ndjson`,
`--check` exits 1 when it is stale. `import_bundle` posts the bundle to `POST /api/saved_objects/_import`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from enricher.errors import EnricherError

ROOT = Path(__file__).resolve().parents[2]
KIBANA_DIR = ROOT / "pipelines" / "kibana"
BUNDLE = KIBANA_DIR / "esa-enricher.ndjson"
TYPES = ("index-pattern", "search", "visualization", "lens", "dashboard")  # directory names = saved object types
_STRING_ATTRIBUTES = ("panelsJSON", "optionsJSON")


def load_objects(directory: Path = KIBANA_DIR) -> list[dict[str, Any]]:
    """Every per-object file as written (nested JSON), sorted by type then id."""
    out = []
    for type_ in TYPES:
        for path in sorted((directory / type_).glob("*.json")):
            obj = json.loads(path.read_text(encoding="utf-8"))
            if obj.get("type") != type_ or obj.get("id") != path.stem:
                raise ValueError(f"{path}: type/id must match its directory and file name")
            out.append(obj)
    return out


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def to_saved_object(obj: dict[str, Any]) -> dict[str, Any]:
    """One object in Kibana's export format: the JSON-in-a-string attributes serialised."""
    out = json.loads(json.dumps(obj))
    attrs = out["attributes"]
    meta = attrs.get("kibanaSavedObjectMeta")
    if meta and "searchSourceJSON" in meta:
        meta["searchSourceJSON"] = _compact(meta["searchSourceJSON"])
    for name in _STRING_ATTRIBUTES:
        if name in attrs:
            attrs[name] = _compact(attrs[name])
    return out


def sort_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Referenced objects before the objects that reference them (as Kibana's export sorts), else in given order."""
    by_key = {(o["type"], o["id"]): o for o in objects}
    done: dict[tuple[str, str], dict[str, Any]] = {}

    def visit(obj: dict[str, Any], path: tuple[tuple[str, str], ...]) -> None:
        key = (obj["type"], obj["id"])
        if key in done:
            return
        if key in path:
            raise ValueError(f"circular reference: {' -> '.join(':'.join(k) for k in (*path, key))}")
        for ref in obj.get("references", []):
            target = by_key.get((ref["type"], ref["id"]))
            if target is not None:
                visit(target, (*path, key))
        done[key] = obj

    for obj in objects:
        visit(obj, ())
    return list(done.values())


def bundle_objects(directory: Path = KIBANA_DIR) -> list[dict[str, Any]]:
    """The saved objects of the bundle, in bundle order."""
    return sort_objects([to_saved_object(o) for o in load_objects(directory)])


def bundle_text(directory: Path = KIBANA_DIR) -> str:
    """The NDJSON bundle: one saved object per line, keys sorted, dependencies first."""
    lines = [
        json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for o in bundle_objects(directory)
    ]
    return "\n".join(lines) + "\n"


def multipart_body(path: Path, boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with the file in the field `file` (what the import API reads); returns (body, content type)."""
    boundary = boundary or f"esa-enricher-{uuid.uuid4().hex}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def import_request(
    url: str,
    path: Path = BUNDLE,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    space: str | None = None,
    overwrite: bool = True,
) -> urllib.request.Request:
    """The `POST <url>[/s/<space>]/api/saved_objects/_import?overwrite=true` request (not sent)."""
    base = url.rstrip("/") + (f"/s/{space}" if space else "")
    query = "?overwrite=true" if overwrite else ""
    body, content_type = multipart_body(path)
    headers = {"kbn-xsrf": "true", "Content-Type": content_type, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    elif username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.request.Request(f"{base}/api/saved_objects/_import{query}", data=body, headers=headers, method="POST")


class KibanaImportError(EnricherError):
    """Kibana refused the import (HTTP error, or `success: false` with per-object errors)."""


def import_bundle(
    url: str,
    path: Path = BUNDLE,
    username: str | None = None,
    password: str | None = None,
    api_key: str | None = None,
    space: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    """Import the bundle into Kibana (overwrite=true) and return Kibana's answer; raises KibanaImportError."""
    req = import_request(url, path, username, password, api_key, space)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the URL is the operator's Kibana
            answer = json.loads(resp.read().decode("utf-8") or "{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:2000]
        raise KibanaImportError(f"Kibana answered HTTP {exc.code} to {req.full_url}: {detail}") from None
    except urllib.error.URLError as exc:
        raise KibanaImportError(f"cannot reach Kibana at {url}: {exc.reason}") from None
    if not answer.get("success", False):
        raise KibanaImportError(f"Kibana import failed: {json.dumps(answer.get('errors', answer))[:2000]}")
    return answer


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    """The `setup` options of the Kibana import (`--kibana URL` and its credentials)."""
    g = parser.add_argument_group("Kibana")
    g.add_argument(
        "--kibana", metavar="URL", help="import the saved objects (data view, searches, dashboard) into this Kibana"
    )
    g.add_argument("--kibana-space", help="Kibana space (default: the default space)")
    g.add_argument(
        "--kibana-user", default=os.environ.get("ESA_KIBANA_USERNAME"), help="basic auth user (env ESA_KIBANA_USERNAME)"
    )
    g.add_argument("--kibana-bundle", type=Path, default=BUNDLE, help="NDJSON to import (default: the bundled one)")


def setup_from_args(a: argparse.Namespace) -> dict[str, Any] | None:
    """Run the import when `--kibana` was given: the report for `setup` (password/API key only from the environment)."""
    if not getattr(a, "kibana", None):
        return None
    answer = import_bundle(
        a.kibana,
        a.kibana_bundle,
        username=a.kibana_user,
        password=os.environ.get("ESA_KIBANA_PASSWORD"),
        api_key=os.environ.get("ESA_KIBANA_API_KEY"),
        space=a.kibana_space,
    )
    return {"imported": answer.get("successCount", 0), "url": a.kibana, "space": a.kibana_space or "default"}


def main(argv: list[str] | None = None) -> int:
    """`python -m enricher.assets.kibana [--check]`: rebuild (or check) pipelines/kibana/esa-enricher.ndjson."""
    ap = argparse.ArgumentParser(prog="python -m enricher.assets.kibana", description="Build the Kibana NDJSON bundle")
    ap.add_argument("--check", action="store_true", help="exit 1 when the committed bundle is stale")
    a = ap.parse_args(argv)
    text = bundle_text()
    if a.check:
        stale = not BUNDLE.exists() or BUNDLE.read_text(encoding="utf-8") != text
        sys.stderr.write(f"{BUNDLE.name}: {'out of date' if stale else 'up to date'}\n")
        return 1 if stale else 0
    BUNDLE.write_text(text, encoding="utf-8")
    sys.stderr.write(f"wrote {BUNDLE.relative_to(ROOT)} ({text.count(chr(10))} objects)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
