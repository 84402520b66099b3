"""Elasticsearch assets (templates, mappings, lifecycle policy) and the index naming of session documents.

The assets are the JSON files in `pipelines/elasticsearch/` (see the README there). Indexing model: one
concrete index per UTC month of `@timestamp` (`esa-sessions-YYYY.MM`), `_id` = `event.id`, so writing a
session again overwrites it; every concrete index joins the read alias `esa-sessions` through the template.
Everything here is pure except `install`, which only PUTs the assets through an `elasticsearch` client.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_PREFIX = "esa-sessions"
# The assets live next to the package: <root>/pipelines/elasticsearch, in the source tree and in an installed wheel.
ASSETS_DIR = Path(__file__).resolve().parents[4] / "pipelines" / "elasticsearch"
SETTINGS, MAPPINGS, TEMPLATE, LIFECYCLE = "settings", "mappings", "template", "lifecycle"
_FILES = {
    SETTINGS: "esa-sessions-settings.json",
    MAPPINGS: "esa-sessions-mappings.json",
    TEMPLATE: "esa-sessions.json",
    LIFECYCLE: "esa-sessions-ilm.json",
}


def load_assets(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """The four JSON assets by role: settings, mappings, template (index template), lifecycle."""
    base = directory or ASSETS_DIR
    out = {}
    for role, name in _FILES.items():
        path = base / name
        try:
            out[role] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"Elasticsearch asset missing: {path} (is pipelines/ packaged?)") from None
    return out


def _leaves(properties: dict[str, Any], prefix: str, out: set[str]) -> None:
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            _leaves(spec["properties"], path + ".", out)
        else:
            out.add(path)


def mapped_fields(assets: dict[str, dict[str, Any]] | None = None) -> set[str]:
    """Dotted leaf paths of the mapping (multi-fields such as `email.subject.keyword` excluded)."""
    assets = assets or load_assets()
    out: set[str] = set()
    _leaves(assets[MAPPINGS]["template"]["mappings"]["properties"], "", out)
    return out


def leaf_types(assets: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Leaf path → mapping type, with `!` appended where malformed values are ignored (`ip!`, `float!`)."""
    out: dict[str, str] = {}

    def walk(props: dict[str, Any], prefix: str) -> None:
        for name, spec in props.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out[prefix + name] = spec["type"] + ("!" if spec.get("ignore_malformed") else "")

    walk((assets or load_assets())[MAPPINGS]["template"]["mappings"]["properties"], "")
    return out


_LONG = (-(2**63), 2**63 - 1)
_ID_MAX_BYTES = 512  # the longest `_id` (event.id) Elasticsearch takes; a longer one fails the whole bulk request
_FLOAT_MAX = 3.4028234663852886e38  # the largest 32-bit float
_ANY_STRING = frozenset(("keyword", "text", "ip!", "float!"))  # types that take any string (malformed ones ignored)


def _fits(kind: str, v: Any) -> bool:
    """Whether Elasticsearch indexes `v` in a field of mapping type `kind` (see `leaf_types`) without refusing it."""
    t = type(v)
    if v is None or kind[-1] == "!":  # null, or a malformed value ignored (kept in _source)
        return True
    if kind == "long":
        return t is int and _LONG[0] <= v <= _LONG[1]
    if kind == "float":
        return (t is int or t is float) and -_FLOAT_MAX <= v <= _FLOAT_MAX
    if kind == "boolean":
        return t is bool
    if kind == "keyword":
        return t is str or t is bool
    if kind == "date":
        try:
            datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
        except (TypeError, ValueError):
            return False
        return t is str
    if kind == "ip":
        import ipaddress

        try:
            ipaddress.ip_address(v)
        except ValueError:
            return False
        return True
    return t is str  # text


def misfits(doc: dict[str, Any], types: dict[str, str]) -> list[tuple[str, Any]]:
    """(path, value) of every value of `doc` the strict mapping `types` (`leaf_types`) would refuse: an
    unmapped field, or a value outside its type (a long beyond 64 bits, a float beyond 32, a date that
    does not parse ...). Empty for a document Elasticsearch indexes whole."""
    bad: list[tuple[str, Any]] = []

    def walk(v: Any, path: str) -> None:
        t = type(v)
        if t is dict:
            if path in types:
                bad.append((path, v))
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else k)
            return
        kind = types.get(path)
        if t is list:
            if kind in _ANY_STRING and all(type(x) is str for x in v):
                return  # the common case (raw lines, addresses), checked at once
            for x in v:
                walk(x, path)
        elif kind is None or not (t is str and kind in _ANY_STRING or _fits(kind, v)):
            bad.append((path, v))

    walk(doc, "")
    ident = (doc.get("event") or {}).get("id")
    if isinstance(ident, str) and len(ident.encode("utf-8", "replace")) > _ID_MAX_BYTES:
        bad.append(("_id", ident))
    return bad


def leaf_paths(doc: Any, prefix: str = "") -> dict[str, set[str]]:
    """Dotted leaf paths of a document with the JSON types found there (arrays of objects give their children)."""
    out: dict[str, set[str]] = {}

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            if path:
                out.setdefault(path, set()).add("object")
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for x in v:
                walk(x, path)
        else:
            out.setdefault(path, set()).add("null" if v is None else type(v).__name__)

    walk(doc, prefix)
    return out


def index_name(prefix: str, timestamp_iso: str | None) -> str:
    """The concrete index of a document: `<prefix>-YYYY.MM` (UTC month of `@timestamp`), `<prefix>-undated` without one."""
    if not timestamp_iso:
        return f"{prefix}-undated"
    ts = datetime.fromisoformat(timestamp_iso)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return f"{prefix}-{ts.year:04d}.{ts.month:02d}"


def bulk_action(doc: dict[str, Any], prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """One `helpers.bulk` action: index into the month's index with `_id` = `event.id` (error documents: auto id)."""
    action: dict[str, Any] = {"_op_type": "index", "_index": index_name(prefix, doc.get("@timestamp")), "_source": doc}
    doc_id = (doc.get("event") or {}).get("id")
    if doc_id:
        action["_id"] = doc_id
    return action


def asset_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Names of the installed objects for a prefix (component templates, index template, policy, read alias)."""
    return {
        SETTINGS: f"{prefix}-settings",
        MAPPINGS: f"{prefix}-mappings",
        TEMPLATE: prefix,
        LIFECYCLE: f"{prefix}-ilm",
        "alias": prefix,
        "pattern": f"{prefix}-*",
    }


def _reason(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('type', 'error')}: {err.get('reason', '')}".strip()
        if err:
            return str(err)
    return str(getattr(exc, "message", None) or exc)


def _body(d: dict[str, Any]) -> dict[str, Any]:
    """Asset JSON → client keyword arguments (`_meta` is `meta` in the client)."""
    return {("meta" if k == "_meta" else k): v for k, v in d.items()}


def install(client: Any, prefix: str = DEFAULT_PREFIX, ilm: bool = True, update_existing: bool = True) -> list[str]:
    """PUT the lifecycle policy (when the cluster has ILM), both component templates and the index template; idempotent.

    With `update_existing`, the mapping is also PUT onto the existing `<prefix>-*` indices, so fields added in a
    new version are accepted by the current month's index too (additions; a field whose type changed keeps its
    old type in the indices that have it, see `compatible_update`, and the step says so).
    Returns one line per step, e.g. "lifecycle policy not installed: <reason>".
    """
    from elasticsearch import ApiError  # the client is only needed by the installer

    assets = load_assets()
    names = asset_names(prefix)
    done: list[str] = []
    policy: str | None = None
    if ilm:
        try:
            client.ilm.get_status()
            client.ilm.put_lifecycle(name=names[LIFECYCLE], policy=assets[LIFECYCLE]["policy"])
            policy = names[LIFECYCLE]
            done.append(f"lifecycle policy {policy}")
        except ApiError as exc:  # no ILM in this cluster (or not allowed): install the rest without it
            done.append(f"lifecycle policy not installed: {_reason(exc)}")
    else:
        done.append("lifecycle policy not installed: disabled (ilm=False)")

    settings = copy.deepcopy(assets[SETTINGS])
    if policy is not None:  # reference the policy only once it exists
        settings["template"]["settings"].setdefault("index", {})["lifecycle"] = {"name": policy}
    client.cluster.put_component_template(name=names[SETTINGS], **_body(settings))
    done.append(f"component template {names[SETTINGS]}")
    client.cluster.put_component_template(name=names[MAPPINGS], **_body(assets[MAPPINGS]))
    done.append(f"component template {names[MAPPINGS]}")

    template = copy.deepcopy(assets[TEMPLATE])
    template["index_patterns"] = [names["pattern"]]
    template["composed_of"] = [names[SETTINGS], names[MAPPINGS]]
    template["template"]["aliases"] = {names["alias"]: {}}
    client.indices.put_index_template(name=names[TEMPLATE], **_body(template))
    done.append(f"index template {names[TEMPLATE]} ({names['pattern']}, alias {names['alias']})")

    if update_existing:
        done.extend(_update_existing(client, names["pattern"], assets[MAPPINGS]["template"]["mappings"]))
    return done


def compatible_update(new: dict[str, Any], old: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """The part of the `new` properties an index mapped with `old` accepts, and the fields whose type changed.

    A field's type cannot change in an existing index (`email.subject` was `text` before ECS's `keyword`): such
    a field keeps its old type there, new fields are added, and the next month's index gets the new mapping.
    """
    out: dict[str, Any] = {}
    changed: list[str] = []
    for name, spec in new.items():
        was = old.get(name)
        if was is None:
            out[name] = spec
        elif "properties" in spec and "properties" in was:
            sub, sub_changed = compatible_update(spec["properties"], was["properties"], f"{prefix}{name}.")
            out[name] = {**spec, "properties": sub}
            changed.extend(sub_changed)
        elif spec.get("type", "object") != was.get("type", "object"):
            changed.append(f"{prefix}{name}")
        else:
            out[name] = spec
    return out, changed


def _update_existing(client: Any, pattern: str, mappings: dict[str, Any]) -> list[str]:
    """PUT the mapping onto the existing indices of `pattern`, leaving a field whose type changed as it is."""
    resp = client.indices.get_mapping(index=pattern, allow_no_indices=True, ignore_unavailable=True)
    existing: dict[str, Any] = getattr(resp, "body", resp)
    kept: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for index, body in sorted(existing.items()):
        update, changed = compatible_update(mappings["properties"], body.get("mappings", {}).get("properties", {}))
        if changed:
            kept[index] = (update, changed)
    if not kept:
        client.indices.put_mapping(index=pattern, allow_no_indices=True, **_body(mappings))
        return [f"mapping updated on existing {pattern} indices"]
    out = []
    for index in sorted(existing):
        update = kept[index][0] if index in kept else mappings["properties"]
        client.indices.put_mapping(index=index, **_body({**mappings, "properties": update}))
    for index, (_, changed) in kept.items():
        out.append(f"mapping updated on {index}, keeping the type it has for {', '.join(changed)} (new indices get the new one)")
    others = len(existing) - len(kept)
    if others:
        out.append(f"mapping updated on {others} other existing {pattern} indices")
    return out
