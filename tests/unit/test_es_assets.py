"""The Elasticsearch assets and the mapping guarantee: every field a document can carry is mapped, with a fitting type.

The mapping is `dynamic: strict`, so an unmapped field is a rejected document in production. The documents checked
here are built in-process from the golden inputs, the demo, every shared sample and a small synthetic corpus.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from enricher.assets import es_mapping
from enricher.core import fields
from enricher.edges.sinks.elasticsearch import assets as es_assets
from enricher.edges.sinks.elasticsearch.assets import bulk_action, index_name, leaf_paths, load_assets, mapped_fields
from enricher.edges.sinks.elasticsearch.encoder import encode
from tests.conftest import ROOT, SAMPLES, replay_in_process
from tests.goldens import array_paths

GOLDEN = ROOT / "tests" / "golden"
DEMO = ROOT / "samples" / "demo-mail_logs.log"

# Paths where documents carry a bare string among objects: merge.py's `_append_fields` appends the value itself
# when a rule names one field (`amp_reputation_query` → "filename", `scan_problem` → "problem") and a dict
# otherwise, so `esa.amp_files` / `esa.scan_issues` can mix strings and objects. Elasticsearch rejects such a
# document (object mapping found a concrete value) whatever the mapping. Remove an entry once merge.py is fixed.
KNOWN_SHAPE_BUGS: set[str] = set()  # paths whose lists mix objects and plain values (none left)

# JSON types each mapping type accepts without a parse error.
_ACCEPTS = {
    "keyword": {"str", "bool", "null"},
    "text": {"str", "null"},
    "date": {"str", "null"},
    "ip": {"str", "null"},
    "long": {"int", "null"},
    "float": {"int", "float", "null"},
    "float!": {"int", "float", "str", "null"},  # numeric strings are coerced, others ignored (kept in _source)
    "ip!": {"str", "null"},
    "boolean": {"bool", "null"},
}


def replay(path: Path, args: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Documents of one file, as `esa-enricher replay FILE ARGS` would write them."""
    return replay_in_process(path, tuple(args))[1]


def golden_and_demo_documents() -> list[dict[str, Any]]:
    """Documents of the demo and of every golden input (with the case's `args`)."""
    docs = replay(DEMO)
    for case in sorted(p for p in GOLDEN.iterdir() if (p / "input.log").exists()):
        args = shlex.split((case / "args").read_text()) if (case / "args").exists() else []
        docs.extend(replay(case / "input.log", args))
    return docs


def sample_documents() -> list[dict[str, Any]]:
    """Documents of every shared sample (`--appliance sample`)."""
    files = sorted(p for p in SAMPLES.glob("*") if p.suffix in (".log", ".s"))
    assert len(files) >= 25, f"samples not found under {SAMPLES}"
    return [d for p in files for d in replay(p, ["--appliance", "sample"])]


def corpus_documents(tmp: Path) -> list[dict[str, Any]]:
    """Documents of a small synthetic corpus from bench/gen_corpus.py (syslog and native formats)."""
    gen = ROOT / "bench" / "gen_corpus.py"
    if not gen.exists():
        return []
    docs = []
    for fmt in ("syslog", "native"):
        out = tmp / f"corpus-{fmt}.log"
        cmd = [sys.executable, str(gen), "--lines", "20000", "--out", str(out), "--format", fmt]
        subprocess.run(cmd, check=True, capture_output=True)
        for p in sorted(tmp.glob(f"corpus-{fmt}*.log")):
            docs.extend(replay(p))
    return docs


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return golden_and_demo_documents() + sample_documents() + corpus_documents(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def emitted(documents: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every leaf path of every document as the Elasticsearch sink encodes it (`event.ingested` added), with the
    JSON types seen there."""
    out: dict[str, set[str]] = {}
    for doc in documents:
        line, _ = encode(doc)
        for path, types in leaf_paths(orjson.loads(line)).items():
            out.setdefault(path, set()).update(types)
    return out


def _mapping_types() -> tuple[dict[str, str], set[str]]:
    """Leaf path → mapping type (`float!` / `ip!` when malformed values are ignored), and the object paths, of the
    mapping the field list (enricher/core/fields.py) generates."""
    leaves = es_assets.leaf_types({es_assets.MAPPINGS: es_mapping.component_template()})
    objects = {p.rsplit(".", i)[0] for p in leaves for i in range(1, p.count(".") + 1)}
    return leaves, objects


# --- the guarantee ---------------------------------------------------------------------------------------
def test_documents_cover_both_kinds(documents: list[dict[str, Any]], emitted: dict[str, set[str]]) -> None:
    kinds = {d["event"]["kind"] for d in documents}
    assert kinds == {"event", "pipeline_error"}
    assert len(documents) > 2000
    # The ECS fields that repeat ESA data are all reached by these inputs (so their types are checked).
    ecs = {
        "ecs.version", "event.ingested", "email.direction", "email.attachments.file.hash.sha256", "destination.ip",
        "destination.port", "network.protocol", "tls.version", "tls.version_protocol", "tls.cipher",
        "tls.established", "user.name", "related.user", "related.hash", "source.domain",
    }
    assert ecs - set(emitted) == set()


def test_every_emitted_leaf_path_is_in_the_field_list(emitted: dict[str, set[str]]) -> None:
    leaves, objects = _mapping_types()
    unmapped = sorted(p for p, types in emitted.items() if types != {"object"} and p not in leaves)
    unmapped = [p for p in unmapped if p not in KNOWN_SHAPE_BUGS]
    assert unmapped == [], f"fields documents carry but enricher/core/fields.py lacks: {unmapped}"
    # Every emitted object is an object in the mapping too (not a leaf).
    assert sorted(p for p, t in emitted.items() if "object" in t and p not in objects) == []


def test_every_array_the_documents_carry_is_an_array_in_the_field_list(documents: list[dict[str, Any]]) -> None:
    """Splunk names fields inside arrays with `{}` (splunk.splunk_name): the list must know every array."""
    found: set[str] = set()
    for doc in documents:
        array_paths(doc, "", found)
    assert found - fields.array_paths() == set()
    # Reached by these inputs, so the list's array flags are checked against real documents, not only trusted.
    assert {"esa.deliveries.rids", "esa.bounces", "esa.envelope.recipients", "related.ip", "esa.raw"} <= found


def test_generated_mapping_and_field_reference_are_up_to_date() -> None:
    assert es_mapping.stale() == [], "run: make assets (python -m enricher.assets.es_mapping)"
    assert es_assets.load_assets()["mappings"] == es_mapping.component_template()


def test_the_field_list_is_consistent() -> None:
    """Names unique, types known, every object on a path listed only as an object, Sigma and CIM names unique."""
    assert len(fields.FIELDS) == len(fields.TABLE)
    assert {f.type for f in fields.TABLE} <= {*fields.MAPPINGS, fields.OBJECT}
    leaf_names = {f.name for f in fields.leaves()}
    parents = {n.rsplit(".", i)[0] for n in leaf_names for i in range(1, n.count(".") + 1)}
    assert leaf_names & parents == set()  # a leaf is never an object on another field's path
    assert {f.name for f in fields.TABLE if f.type == fields.OBJECT} <= parents
    for attr in ("sigma", "cim"):
        names = [getattr(f, attr) for f in fields.TABLE if getattr(f, attr)]
        assert len(names) == len(set(names)), attr
    assert all(f.description.strip() for f in fields.TABLE)
    with pytest.raises(KeyError):
        fields.name("esa.no_such_field")


def test_every_emitted_value_fits_its_mapped_type(emitted: dict[str, set[str]]) -> None:
    leaves, _ = _mapping_types()
    misfits = {
        p: (leaves[p], sorted(types))
        for p, types in emitted.items()
        if p in leaves and not types <= _ACCEPTS[leaves[p]]
    }
    assert misfits == {}


def test_every_value_is_in_its_types_range(documents: list[dict[str, Any]]) -> None:
    """Not only the JSON type: a long within 64 bits, a float within 32, dates that parse (bench/fuzz.py checks
    the same on mutated input)."""
    types = es_assets.leaf_types()
    assert [bad for d in documents for bad in es_assets.misfits(d, types)] == []
    assert es_assets.misfits({"esa": {"mid": 2**63, "connection": {"sbrs": 1e39}}, "x": 1}, types) == [
        ("esa.mid", 2**63),
        ("esa.connection.sbrs", 1e39),
        ("x", 1),
    ]


def test_no_path_mixes_objects_and_values(emitted: dict[str, set[str]]) -> None:
    _, objects = _mapping_types()
    mixed = sorted(p for p, types in emitted.items() if p in objects and types - {"object", "null"})
    assert mixed == []


def test_ip_fields_carry_ip_addresses(documents: list[dict[str, Any]]) -> None:
    """ip fields ignore malformed values (kept in _source, listed in _ignored); none of our inputs has one."""
    leaves, _ = _mapping_types()
    ip_paths = {p for p, t in leaves.items() if t.startswith("ip")}
    bad = []

    def values(v: Any, parts: list[str]) -> Iterable[Any]:
        if isinstance(v, list):
            for x in v:
                yield from values(x, parts)
        elif not parts:
            yield v
        elif isinstance(v, dict) and parts[0] in v:
            yield from values(v[parts[0]], parts[1:])

    for doc in documents:
        for p in ip_paths:
            for v in values(doc, p.split(".")):
                try:
                    ipaddress.ip_address(v)
                except ValueError:
                    bad.append((p, v))
    assert bad == []


def test_mapped_fields_are_all_emitted_by_code() -> None:
    """The mapping has no fields the builder cannot emit (the listed ones exist in code, not in our inputs)."""
    expected_core = {
        "@timestamp", "event.id", "event.original", "error.code", "error.type", "esa.raw", "source.ip", "event.ingested"
    }
    assert expected_core <= mapped_fields()
    assert "email.subject.text" not in mapped_fields()  # multi-fields are not document fields


# --- the asset files -------------------------------------------------------------------------------------
def test_assets_are_valid_and_complete() -> None:
    assets = load_assets()
    assert set(assets) == {"settings", "mappings", "template", "lifecycle"}
    for name in es_assets._FILES.values():
        assert (es_assets.ASSETS_DIR / name).is_file()


def test_settings() -> None:
    idx = load_assets()["settings"]["template"]["settings"]["index"]
    assert idx["number_of_shards"] == 1 and idx["number_of_replicas"] == 0
    assert idx["mapping"]["ignore_malformed"] is False
    assert "lifecycle" not in idx  # added by install() only once the policy exists


def test_field_count_is_well_under_the_limit() -> None:
    assets = load_assets()
    limit = assets["settings"]["template"]["settings"]["index"]["mapping"]["total_fields"]["limit"]
    count = 0

    def walk(props: dict[str, Any]) -> None:
        nonlocal count
        for spec in props.values():
            count += 1 + len(spec.get("fields", {}))
            walk(spec.get("properties", {}))

    walk(assets["mappings"]["template"]["mappings"]["properties"])
    assert count * 1.5 < limit, f"{count} mapped fields: raise total_fields.limit ({limit})"


def test_mapping_is_strict_and_raw_is_not_indexed() -> None:
    m = load_assets()["mappings"]["template"]["mappings"]
    assert m["dynamic"] == "strict"
    p = m["properties"]
    for spec in (p["esa"]["properties"]["raw"], p["event"]["properties"]["original"]):
        assert spec == {"type": "keyword", "index": False, "doc_values": False}
    # As ECS maps it: exact values for aggregations and rules, and a text multi-field to search words in.
    subject = p["email"]["properties"]["subject"]
    assert subject == {"type": "keyword", "ignore_above": 1024, "fields": {"text": {"type": "text"}}}
    assert p["event"]["properties"]["duration"]["type"] == "long"
    leaves, _ = _mapping_types()
    ecs_types = {
        "ecs.version": "keyword",
        "event.ingested": "date",
        "email.direction": "keyword",
        "email.attachments.file.hash.sha256": "keyword",
        "destination.ip": "ip!",
        "destination.port": "long",
        "network.protocol": "keyword",
        "tls.version": "keyword",
        "tls.version_protocol": "keyword",
        "tls.cipher": "keyword",
        "tls.established": "boolean",
        "user.name": "keyword",
        "related.user": "keyword",
        "related.hash": "keyword",
    }
    assert {f: leaves.get(f) for f in ecs_types} == ecs_types
    assert all(t == "date" for path, t in leaves.items() if path.endswith("_time"))
    # ip fields come from loosely matched log text: a value that is not an IP must not fail the document.
    assert {p for p, t in leaves.items() if t.startswith("ip")} == {p for p, t in leaves.items() if t == "ip!"}
    for ip in ("source.ip", "related.ip", "esa.connection.interface_ip", "esa.deliveries.destination_ip"):
        assert leaves[ip] == "ip!"


def test_index_template_pattern_alias_and_components() -> None:
    t = load_assets()["template"]
    assert t["index_patterns"] == ["esa-sessions-*"]
    assert t["composed_of"] == ["esa-sessions-settings", "esa-sessions-mappings"]
    assert t["template"]["aliases"] == {"esa-sessions": {}}
    assert t["priority"] > 100  # above the built-in logs-*-* / metrics-*-* templates
    assert "data_stream" not in t  # concrete monthly indices, not a data stream


def test_lifecycle_policy_deletes_after_90_days_without_rollover() -> None:
    phases = load_assets()["lifecycle"]["policy"]["phases"]
    assert phases["delete"] == {"min_age": "90d", "actions": {"delete": {}}}
    assert "rollover" not in phases["hot"]["actions"]


# --- naming ----------------------------------------------------------------------------------------------
def test_index_name() -> None:
    assert index_name("esa-sessions", "2026-11-27T12:00:00.000Z") == "esa-sessions-2026.11"
    assert index_name("esa-sessions", "2026-12-31T23:59:59.999Z") == "esa-sessions-2026.12"
    assert index_name("esa-sessions", "2027-01-01T08:00:00+09:00") == "esa-sessions-2026.12"  # UTC month
    assert index_name("x", None) == "x-undated"


def test_bulk_action_uses_event_id() -> None:
    doc = {"@timestamp": "2026-11-27T12:00:00.000Z", "event": {"id": "esa:m1:1"}}
    assert bulk_action(doc) == {
        "_op_type": "index",
        "_index": "esa-sessions-2026.11",
        "_id": "esa:m1:1",
        "_source": doc,
    }
    err = {"event": {"kind": "pipeline_error"}}
    assert "_id" not in bulk_action(err, "p") and bulk_action(err, "p")["_index"] == "p-undated"


# --- the installer, with a recording fake client -----------------------------------------------------------
class _Api:
    def __init__(
        self, calls: list[tuple[str, dict[str, Any]]], ns: str, fail: set[str], answers: dict[str, Any]
    ) -> None:
        self._calls, self._ns, self._fail, self._answers = calls, ns, fail, answers

    def __getattr__(self, name: str) -> Any:
        def call(**kw: Any) -> dict[str, Any]:
            self._calls.append((f"{self._ns}.{name}", kw))
            if f"{self._ns}.{name}" in self._fail:
                from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
                from elasticsearch import BadRequestError

                meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
                body = {"error": "no handler found for uri [/_ilm/status] and method [GET]"}
                raise BadRequestError("no handler", meta, body)
            return self._answers.get(f"{self._ns}.{name}", {"acknowledged": True})

        return call


class FakeClient:
    def __init__(self, fail: set[str] = frozenset(), existing: dict[str, Any] | None = None) -> None:  # type: ignore[assignment]
        pytest.importorskip("elasticsearch")  # install() catches the client's ApiError
        self.calls: list[tuple[str, dict[str, Any]]] = []
        answers = {"indices.get_mapping": existing or {}}  # the existing indices' mappings
        for ns in ("ilm", "cluster", "indices"):
            setattr(self, ns, _Api(self.calls, ns, fail, answers))


def test_install_without_ilm_reports_and_does_not_reference_a_policy() -> None:
    client = FakeClient(fail={"ilm.get_status"})
    msgs = es_assets.install(client)
    assert msgs[0] == "lifecycle policy not installed: no handler found for uri [/_ilm/status] and method [GET]"
    names = [c for c, _ in client.calls]
    assert "ilm.put_lifecycle" not in names
    settings = next(kw for c, kw in client.calls if c == "cluster.put_component_template")
    assert settings["name"] == "esa-sessions-settings"
    assert "lifecycle" not in settings["template"]["settings"]["index"]


def test_install_with_ilm_puts_the_policy_first_and_references_it() -> None:
    client = FakeClient()
    msgs = es_assets.install(client, prefix="lab")
    names = [c for c, _ in client.calls]
    assert names == [
        "ilm.get_status",
        "ilm.put_lifecycle",
        "cluster.put_component_template",
        "cluster.put_component_template",
        "indices.put_index_template",
        "indices.get_mapping",
        "indices.put_mapping",
    ]
    assert msgs[0] == "lifecycle policy lab-ilm"
    settings = client.calls[2][1]
    assert settings["name"] == "lab-settings"
    assert settings["template"]["settings"]["index"]["lifecycle"] == {"name": "lab-ilm"}
    template = client.calls[4][1]
    assert template["index_patterns"] == ["lab-*"]
    assert template["composed_of"] == ["lab-settings", "lab-mappings"]
    assert template["template"]["aliases"] == {"lab": {}}
    assert "_meta" not in template and "meta" in template
    assert load_assets()["settings"]["template"]["settings"]["index"].get("lifecycle") is None  # not mutated


def test_install_keeps_a_changed_type_in_existing_indices() -> None:
    """email.subject was `text` (+ `.keyword`) before it became ECS's `keyword` (+ `.text`): an index that has it
    keeps it (Elasticsearch refuses to change a type) and still gets every new field; other indices get all."""
    old = {"properties": {"email": {"properties": {"subject": {"type": "text"}, "local_id": {"type": "keyword"}}}}}
    client = FakeClient(existing={"lab-2026.11": {"mappings": old}, "lab-2026.12": {"mappings": {"properties": {}}}})
    msgs = es_assets.install(client, prefix="lab")
    puts = [kw for c, kw in client.calls if c == "indices.put_mapping"]
    assert [p["index"] for p in puts] == ["lab-2026.11", "lab-2026.12"]
    full = load_assets()["mappings"]["template"]["mappings"]["properties"]
    assert puts[1]["properties"] == full
    email = puts[0]["properties"]["email"]["properties"]
    assert "subject" not in email and email["direction"] == full["email"]["properties"]["direction"]
    assert puts[0]["properties"]["event"] == full["event"]  # event.ingested and the rest: added
    assert msgs[-2:] == [
        "mapping updated on lab-2026.11, keeping the type it has for email.subject (new indices get the new one)",
        "mapping updated on 1 other existing lab-* indices",
    ]


def test_compatible_update() -> None:
    new = {"a": {"type": "keyword"}, "o": {"properties": {"x": {"type": "long"}, "y": {"type": "date"}}}}
    old = {"a": {"type": "text"}, "o": {"properties": {"x": {"type": "keyword"}}}}
    assert es_assets.compatible_update(new, old) == ({"o": {"properties": {"y": {"type": "date"}}}}, ["a", "o.x"])
    assert es_assets.compatible_update(new, {}) == (new, [])
    assert es_assets.compatible_update({"o": {"type": "keyword"}}, {"o": {"properties": {}}}) == ({}, ["o"])
