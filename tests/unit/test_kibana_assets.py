"""The Kibana saved objects bundle: generated from the per-object files, self-contained, on mapped fields.

Kibana itself cannot run here: these tests check the structure Kibana's import relies on (ids, types,
references and the reference names inside the objects). The import client is tested in test_kibana_import.py
against a local fake of the endpoint (it checks the request we send, not Kibana). The queries run on a real Elasticsearch in
tests/integration/test_kibana_queries.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from enricher.assets import kibana
from enricher.core import fields

STABLE_IDS = {  # ids are part of the contract: dashboards, links and bookmarks point at them
    ("index-pattern", "esa-sessions"),
    ("search", "esa-aborted-receptions"),
    ("search", "esa-transport-aborts"),
    ("search", "esa-inbound-timeouts"),
    ("search", "esa-sender-quit-null-sender"),
    ("search", "esa-aborted-sessions"),
    ("search", "esa-aborted-sessions-one-appliance"),
    ("lens", "esa-aborts-over-time-by-layer"),
    ("lens", "esa-top-source-ips-by-abort-reason"),
    ("lens", "esa-top-sender-domains-by-abort-reason"),
    ("dashboard", "esa-aborts-overview"),
    ("search", "esa-delivery-problems"),
    ("search", "esa-delivery-bounces"),
    ("search", "esa-delivery-expired"),
    ("search", "esa-delivery-delays"),
    ("search", "esa-delivery-tls-failures"),
    ("lens", "esa-delivery-problems-over-time"),
    ("lens", "esa-bounce-codes-by-reason"),
    ("lens", "esa-delay-codes-by-destination"),
    ("lens", "esa-delivery-problems-by-recipient"),
    ("lens", "esa-outbound-tls-failures"),
    ("dashboard", "esa-delivery-health"),
}


@pytest.fixture(scope="module")
def bundle() -> list[dict[str, Any]]:
    lines = kibana.BUNDLE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_committed_bundle_equals_the_generated_one() -> None:
    assert kibana.BUNDLE.read_text(encoding="utf-8") == kibana.bundle_text(), "run: python -m enricher.assets.kibana"


def test_ids_are_stable_and_unique(bundle: list[dict[str, Any]]) -> None:
    keys = [(o["type"], o["id"]) for o in bundle]
    assert len(keys) == len(set(keys)) and len({o["id"] for o in bundle}) == len(bundle)
    assert set(keys) == STABLE_IDS


def test_each_line_is_one_saved_object(bundle: list[dict[str, Any]]) -> None:
    for o in bundle:
        assert set(o) >= {"type", "id", "attributes", "references", "coreMigrationVersion", "typeMigrationVersion"}
        assert o["attributes"]["title"]
        for ref in o["references"]:
            assert set(ref) == {"type", "id", "name"}


def test_every_reference_resolves_inside_the_bundle(bundle: list[dict[str, Any]]) -> None:
    keys = {(o["type"], o["id"]) for o in bundle}
    for o in bundle:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in keys, (o["id"], ref)


def test_referenced_objects_come_first(bundle: list[dict[str, Any]]) -> None:
    # Kibana's import does not need it (references are checked against the whole file and the existing objects);
    # its export writes dependencies first, and so does this bundle.
    seen: set[tuple[str, str]] = set()
    for o in bundle:
        assert all((r["type"], r["id"]) in seen for r in o["references"]), o["id"]
        seen.add((o["type"], o["id"]))


def test_sort_refuses_a_cycle() -> None:
    a = {"type": "search", "id": "a", "references": [{"type": "search", "id": "b", "name": "x"}]}
    b = {"type": "search", "id": "b", "references": [{"type": "search", "id": "a", "name": "x"}]}
    with pytest.raises(ValueError, match="circular"):
        kibana.sort_objects([a, b])


def _names(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in o["references"]}


def _source(o: dict[str, Any]) -> dict[str, Any]:
    raw = o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    assert isinstance(raw, str)  # Kibana stores it as a JSON string
    return json.loads(raw)


def test_data_view(bundle: list[dict[str, Any]]) -> None:
    dv = next(o for o in bundle if o["type"] == "index-pattern")
    assert dv["attributes"]["title"] == "esa-sessions" and dv["attributes"]["timeFieldName"] == "@timestamp"


def test_data_view_fields_come_from_the_field_list(bundle: list[dict[str, Any]]) -> None:
    attrs = next(o for o in bundle if o["type"] == "index-pattern")["attributes"]
    formats, field_attrs = json.loads(attrs["fieldFormatMap"]), json.loads(attrs["fieldAttrs"])  # JSON strings
    assert formats["event.duration"] == {
        "id": "duration",
        "params": {"inputFormat": "nanoseconds", "outputFormat": "humanizePrecise"},
    }
    assert formats["esa.size"] == {"id": "bytes"}
    assert set(formats) <= set(field_attrs) == {f.name for f in fields.leaves()}
    assert field_attrs["abort_reason"]["customDescription"] == fields.FIELDS["abort_reason"].description


def test_saved_searches_name_their_references(bundle: list[dict[str, Any]]) -> None:
    for o in (o for o in bundle if o["type"] == "search"):
        src, refs = _source(o), _names(o)
        assert src["query"]["language"] == "lucene" and src["query"]["query"]
        assert refs[src["indexRefName"]]["type"] == "index-pattern"
        for f in src["filter"]:
            assert refs[f["meta"]["indexRefName"]]["type"] == "index-pattern"
            assert f["query"] == {"match_phrase": {f["meta"]["key"]: f["meta"]["params"]["query"]}}
        assert len(refs) == 1 + len(src["filter"])
        assert o["attributes"]["sort"] == [["@timestamp", "desc"]] and o["attributes"]["columns"]


def test_lens_layers_name_their_references(bundle: list[dict[str, Any]]) -> None:
    for o in (o for o in bundle if o["type"] == "lens"):
        state, refs = o["attributes"]["state"], _names(o)
        layers = state["datasourceStates"]["formBased"]["layers"]
        assert set(refs) == {f"indexpattern-datasource-layer-{lid}" for lid in layers}
        for layer in layers.values():
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for col in layer["columns"].values():
                order_by = col.get("params", {}).get("orderBy", {}).get("columnId")
                assert order_by is None or order_by in layer["columns"]
        vis = state["visualization"]
        used = {
            a
            for layer in vis.get("layers", [])
            for a in [*layer["accessors"], layer["xAccessor"], layer["splitAccessor"]]
        }
        used |= {c["columnId"] for c in vis.get("columns", [])}
        assert used == {c for layer in layers.values() for c in layer["columns"]}


PANELS = {"esa-aborts-overview": 4, "esa-delivery-health": 6}  # panels per dashboard


def test_dashboard_panels_name_their_references(bundle: list[dict[str, Any]]) -> None:
    dashboards = [o for o in bundle if o["type"] == "dashboard"]
    assert {d["id"] for d in dashboards} == set(PANELS)
    for dash in dashboards:
        panels = json.loads(dash["attributes"]["panelsJSON"])
        json.loads(dash["attributes"]["optionsJSON"])
        _source(dash)
        refs = _names(dash)
        assert len(refs) == len(panels) == PANELS[dash["id"]]
        for p in panels:
            assert p["gridData"]["i"] == p["panelIndex"] and p["panelRefName"] == f"panel_{p['panelIndex']}"
            ref = refs[f"{p['panelIndex']}:{p['panelRefName']}"]
            assert ref["type"] == p["type"]
        assert {r["type"] for r in refs.values()} == {"lens", "search"}


def test_every_lens_is_on_a_dashboard(bundle: list[dict[str, Any]]) -> None:
    on_dashboards = {r["id"] for o in bundle if o["type"] == "dashboard" for r in o["references"]}
    assert {o["id"] for o in bundle if o["type"] == "lens"} <= on_dashboards


_FIELD = re.compile(r"(?:_exists_:|\b)([A-Za-z_@][\w.@]*)(?=:)")


def _query_fields(query: str) -> set[str]:
    return {f for f in _FIELD.findall(query) if f != "_exists_"}


def test_every_field_used_is_a_document_field(bundle: list[dict[str, Any]]) -> None:
    mapped = {f.name for f in fields.leaves()}
    used: set[str] = set()
    for o in bundle:
        if o["type"] == "search":
            src = _source(o)
            used |= set(o["attributes"]["columns"]) | _query_fields(src["query"]["query"])
            used |= {f["meta"]["key"] for f in src["filter"]}
        elif o["type"] == "lens":
            state = o["attributes"]["state"]
            used |= _query_fields(state["query"]["query"])
            for layer in state["datasourceStates"]["formBased"]["layers"].values():
                used |= {c["sourceField"] for c in layer["columns"].values() if c["sourceField"] != "___records___"}
    assert {"abort_reason", "source.ip", "observer.hostname", "esa.envelope.null_sender"} <= used
    assert {"esa.bounces.code", "esa.delays.code", "esa.deliveries.tls.status", "destination.ip"} <= used
    assert used - mapped == set()
