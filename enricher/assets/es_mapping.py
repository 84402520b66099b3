"""Generate the Elasticsearch mapping (`pipelines/elasticsearch/esa-sessions-mappings.json`) from the field list.

`python -m enricher.assets.es_mapping` rewrites the mapping component template and `docs/fields.md`,
`--check` exits 1 when either differs from a fresh build. The fields, their types and what each type maps to
are `enricher/core/fields.py`; the other Elasticsearch assets (settings, index template, lifecycle) are
hand-written next to it and installed by `enricher/edges/sinks/elasticsearch/assets.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from enricher.core import fields
from enricher.edges.sinks.elasticsearch import assets as es_assets

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS_FILE = es_assets.ASSETS_DIR / es_assets._FILES[es_assets.MAPPINGS]  # noqa: SLF001 - one name per file
DOC_FILE = ROOT / "docs" / "fields.md"
# Bumped when a field changes type (es_assets.install keeps an existing index's type then, and says so).
MAPPING_VERSION = 2
_META = {
    "description": "esa-sessions field mappings (session documents and pipeline_error documents)",
    "managed_by": "esa-enricher",
}
_MAPPINGS_META = {
    "description": "Explicit mapping of every field esa-enricher documents carry, generated from the field list "
    "(enricher/core/fields.py, make assets). dynamic: strict -- a field not listed here is a rejected document, "
    "not a silent new mapping.",
    "version": MAPPING_VERSION,
}


def properties() -> dict[str, Any]:
    """The mapping's `properties`: every leaf field of the list at its path, objects in between, keys sorted."""
    root: dict[str, Any] = {}
    for f in fields.leaves():
        node = root
        *parents, leaf = f.name.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = fields.MAPPINGS[f.type]
    return _sorted(root)


def _sorted(props: dict[str, Any]) -> dict[str, Any]:
    return {k: {"properties": _sorted(v["properties"])} if "properties" in v else v for k, v in sorted(props.items())}


def component_template() -> dict[str, Any]:
    """The `<prefix>-mappings` component template: the strict mapping of `properties()`."""
    mappings = {"_meta": _MAPPINGS_META, "dynamic": "strict", "properties": properties()}
    return {"_meta": _META, "version": MAPPING_VERSION, "template": {"mappings": mappings}}


def _dump(value: Any, indent: int) -> str:
    """JSON with one object per line, except objects of plain values, which stay on one line (one field a line)."""
    if not isinstance(value, dict) or not any(isinstance(v, dict | list) for v in value.values()):
        return json.dumps(value, ensure_ascii=False)
    pad = "  " * (indent + 1)
    items = ",\n".join(f"{pad}{json.dumps(k)}: {_dump(v, indent + 1)}" for k, v in value.items())
    return "{\n" + items + "\n" + "  " * indent + "}"


def mappings_text() -> str:
    """The mapping file's text."""
    return _dump(component_template(), 0) + "\n"


def render() -> dict[Path, str]:
    """Every file generated here → its content."""
    from enricher.assets import fields_doc

    return {MAPPINGS_FILE: mappings_text(), DOC_FILE: fields_doc.markdown()}


def stale() -> list[str]:
    """The generated files that differ from a fresh build (or are missing), relative to the repository."""
    return [str(p.relative_to(ROOT)) for p, text in render().items() if not p.exists() or p.read_text("utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    """`python -m enricher.assets.es_mapping [--check]`."""
    ap = argparse.ArgumentParser(prog="python -m enricher.assets.es_mapping", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a generated file is not up to date")
    a = ap.parse_args(argv)
    if a.check:
        diff = stale()
        sys.stderr.write(f"out of date: {', '.join(diff)}\n" if diff else "up to date\n")
        return 1 if diff else 0
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
