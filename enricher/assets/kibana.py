"""Kibana saved objects: the per-object files in `pipelines/kibana/<type>/<id>.json`, their NDJSON bundle, its import.

The per-object files keep Kibana's JSON-in-a-string attributes (`searchSourceJSON`, `panelsJSON`,
`optionsJSON`) as plain JSON so they can be reviewed; `bundle_text()` turns them into the strings Kibana
exports and imports, one object per line, dependencies first (the order of Kibana's own exports; its import
does not depend on the order). The data view's field formats and field descriptions (`fieldFormatMap`,
`fieldAttrs`) are not in its file: the bundle takes them from the field list (`enricher/core/fields.py`). `python -m enricher.assets.kibana` rewrites `pipelines/kibana/esa-enricher.ndjson`,
`--check` exits 1 when it is stale. `kibana_import.py` imports the bundle into Kibana (`setup --kibana`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from enricher.core import fields

ROOT = Path(__file__).resolve().parents[2]
KIBANA_DIR = ROOT / "pipelines" / "kibana"
BUNDLE = KIBANA_DIR / "esa-enricher.ndjson"
TYPES = ("index-pattern", "search", "visualization", "lens", "dashboard")  # directory names = saved object types
_STRING_ATTRIBUTES = ("panelsJSON", "optionsJSON")
DATA_VIEW = "index-pattern"


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


def data_view_fields() -> dict[str, Any]:
    """The data view's field attributes from the field list: formats (`fieldFormatMap`) and descriptions
    (`fieldAttrs[].customDescription`, shown by Kibana 8.16 and later; earlier versions keep and ignore them)."""
    leaves = fields.leaves()
    return {
        "fieldFormatMap": {f.name: f.kibana for f in leaves if f.kibana},
        "fieldAttrs": {f.name: {"customDescription": f.description} for f in leaves},
    }


def to_saved_object(obj: dict[str, Any]) -> dict[str, Any]:
    """One object in Kibana's export format: the JSON-in-a-string attributes serialised (a data view's field
    attributes added from the field list)."""
    out = json.loads(json.dumps(obj))
    attrs = out["attributes"]
    if out["type"] == DATA_VIEW:
        attrs.update({k: _compact(v) for k, v in data_view_fields().items()})
    meta = attrs.get("kibanaSavedObjectMeta")
    if meta and "searchSourceJSON" in meta:
        meta["searchSourceJSON"] = _compact(meta["searchSourceJSON"])
    for name in _STRING_ATTRIBUTES:
        if name in attrs:
            attrs[name] = _compact(attrs[name])
    return out  # type: ignore[no-any-return]  # parsed JSON


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
