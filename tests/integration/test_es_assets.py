"""The Elasticsearch assets on a real node ($ESA_ES_URL): install, strict mapping, overwrite by id, analyst queries.

Everything lives under a prefix of its own (`esa-it-<random>`), removed at the end, so the lab's `esa-sessions-*`
indices are left alone.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import helpers

from enricher.edges.sinks.elasticsearch.assets import asset_names, bulk_action, index_name, install, mapped_fields
from tests.unit.test_es_assets import golden_and_demo_documents

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefix(es_client: Any) -> Iterator[str]:
    p = f"esa-it-{uuid.uuid4().hex[:8]}"
    yield p
    names = asset_names(p)
    es_client.options(ignore_status=404).indices.delete(index=names["pattern"], expand_wildcards="all")
    es_client.options(ignore_status=404).indices.delete_index_template(name=names["template"])
    for n in (names["settings"], names["mappings"]):
        es_client.options(ignore_status=404).cluster.delete_component_template(name=n)
    es_client.options(ignore_status=(400, 404)).ilm.delete_lifecycle(name=names["lifecycle"])


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return golden_and_demo_documents()


@pytest.fixture(scope="module")
def final_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the indices hold after writing `docs` in order: the last document of each id, and every error document."""
    by_id: dict[str, dict[str, Any]] = {}
    errors = []
    for d in docs:
        if d["event"].get("id"):
            by_id[d["event"]["id"]] = d
        else:
            errors.append(d)
    return [*by_id.values(), *errors]


def _ilm_available(client: Any) -> bool:
    try:
        client.ilm.get_status()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def installed(es_client: Any, prefix: str) -> list[str]:
    first = install(es_client, prefix)
    second = install(es_client, prefix)  # idempotent
    assert second == first
    return first


@pytest.fixture(scope="module")
def indexed(es_client: Any, prefix: str, installed: list[str], docs: list[dict[str, Any]]) -> int:
    ok, errors = helpers.bulk(
        es_client, (bulk_action(d, prefix) for d in docs), raise_on_error=False, refresh="wait_for"
    )
    assert errors == [], errors[:3]  # the strict mapping accepts every document
    assert ok == len(docs)
    return ok


def _count(client: Any, index: str, query: dict[str, Any] | None = None) -> int:
    client.indices.refresh(index=index)
    return client.count(index=index, query=query or {"match_all": {}})["count"]


def test_install_reports_each_step_and_lifecycle(es_client: Any, prefix: str, installed: list[str]) -> None:
    names = asset_names(prefix)
    assert installed[1:] == [
        f"component template {names['settings']}",
        f"component template {names['mappings']}",
        f"index template {prefix} ({prefix}-*, alias {prefix})",
        f"mapping updated on existing {prefix}-* indices",
    ]
    settings = es_client.cluster.get_component_template(name=names["settings"])["component_templates"][0]
    index_settings = settings["component_template"]["template"]["settings"]["index"]
    if _ilm_available(es_client):
        assert installed[0] == f"lifecycle policy {names['lifecycle']}"
        assert index_settings["lifecycle"]["name"] == names["lifecycle"]
    else:
        assert installed[0].startswith("lifecycle policy not installed: ")
        assert "lifecycle" not in index_settings  # never reference a policy that does not exist
    t = es_client.indices.get_index_template(name=prefix)["index_templates"][0]["index_template"]
    assert t["index_patterns"] == [f"{prefix}-*"]
    assert t["composed_of"] == [names["settings"], names["mappings"]]
    assert t["template"]["aliases"] == {prefix: {}}


def test_every_document_is_accepted_and_readable_through_the_alias(
    es_client: Any, prefix: str, indexed: int, final_docs: list[dict[str, Any]]
) -> None:
    assert _count(es_client, prefix) == len(final_docs)
    expected_indices = {index_name(prefix, d.get("@timestamp")) for d in final_docs}
    got = es_client.indices.get_alias(name=prefix)
    assert set(got) == expected_indices
    mapping = es_client.indices.get_mapping(index=sorted(expected_indices)[0])
    m = next(iter(mapping.values()))["mappings"]
    assert m["dynamic"] == "strict"
    settings = next(iter(es_client.indices.get_settings(index=sorted(expected_indices)[0]).values()))["settings"]
    assert settings["index"]["number_of_replicas"] == "0" and settings["index"]["number_of_shards"] == "1"


def test_writing_again_overwrites(
    es_client: Any, prefix: str, indexed: int, docs: list[dict[str, Any]], final_docs: list[dict[str, Any]]
) -> None:
    again = [d for d in docs if d["event"].get("id")]  # error documents have no deterministic id
    ok, errors = helpers.bulk(es_client, (bulk_action(d, prefix) for d in again), raise_on_error=False)
    assert errors == [] and ok == len(again)
    assert _count(es_client, prefix) == len(final_docs)
    one = again[0]
    got = es_client.get(index=index_name(prefix, one["@timestamp"]), id=one["event"]["id"])
    assert got["_version"] >= 2 and got["_source"] == next(
        d for d in final_docs if d["event"].get("id") == one["event"]["id"]
    )


def test_an_unknown_field_is_rejected(es_client: Any, prefix: str, indexed: int, docs: list[dict[str, Any]]) -> None:
    base = next(d for d in docs if d["event"].get("id") and "connection" in d.get("esa", {}))
    top = copy.deepcopy(base)
    top["surprise"] = 1
    deep = copy.deepcopy(base)
    deep["esa"]["connection"]["surprise"] = "x"
    for i, doc in enumerate((top, deep)):
        doc["event"]["id"] = f"strict-probe-{i}"
        _, errors = helpers.bulk(es_client, [bulk_action(doc, prefix)], raise_on_error=False)
        assert len(errors) == 1
        assert errors[0]["index"]["error"]["type"] == "strict_dynamic_mapping_exception"
    assert "surprise" not in mapped_fields()


def test_a_value_that_is_not_an_ip_does_not_fail_the_document(
    es_client: Any, prefix: str, installed: list[str], docs: list[dict[str, Any]]
) -> None:
    probe_index = f"{prefix}-probe"
    doc = copy.deepcopy(next(d for d in docs if d.get("source", {}).get("ip")))
    doc["source"]["ip"] = "not-an-ip"
    doc["related"]["ip"] = ["192.0.2.1", "unknown"]
    try:
        es_client.index(index=probe_index, id="ip-probe", document=doc, refresh="wait_for")
        hit = es_client.search(index=probe_index, query={"ids": {"values": ["ip-probe"]}})["hits"]["hits"][0]
        assert set(hit["_ignored"]) == {"source.ip", "related.ip"}  # kept in _source, listed as ignored
        assert hit["_source"]["source"]["ip"] == "not-an-ip"
        assert _count(es_client, probe_index, {"term": {"related.ip": "192.0.2.1"}}) == 1
    finally:
        es_client.options(ignore_status=404).indices.delete(index=probe_index)


def test_term_on_abort_reason(es_client: Any, prefix: str, indexed: int, final_docs: list[dict[str, Any]]) -> None:
    expected = Counter(d["abort_reason"] for d in final_docs if "abort_reason" in d)
    assert len(expected) >= 5
    for reason, n in expected.items():
        assert _count(es_client, prefix, {"term": {"abort_reason": reason}}) == n, reason


def test_range_on_timestamp(es_client: Any, prefix: str, indexed: int, final_docs: list[dict[str, Any]]) -> None:
    stamps = sorted(d["@timestamp"] for d in final_docs if "@timestamp" in d)
    lo, hi = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    expected = sum(lo <= s < hi for s in stamps)  # format_iso stamps compare as strings
    assert 0 < expected < len(final_docs)
    assert _count(es_client, prefix, {"range": {"@timestamp": {"gte": lo, "lt": hi}}}) == expected


def test_terms_aggregation_on_abort_layer(
    es_client: Any, prefix: str, indexed: int, final_docs: list[dict[str, Any]]
) -> None:
    expected = Counter(d["abort_layer"] for d in final_docs if "abort_layer" in d)
    res = es_client.search(index=prefix, size=0, aggs={"layers": {"terms": {"field": "abort_layer", "size": 50}}})
    got = {b["key"]: b["doc_count"] for b in res["aggregations"]["layers"]["buckets"]}
    assert got == dict(expected)


def test_match_on_subject(es_client: Any, prefix: str, indexed: int, final_docs: list[dict[str, Any]]) -> None:
    subjects = [d["email"]["subject"] for d in final_docs if d.get("email", {}).get("subject")]
    assert subjects

    def tokens(text: str) -> set[str]:
        return {t["token"] for t in es_client.indices.analyze(analyzer="standard", text=text)["tokens"]}

    tokenized = [tokens(s) for s in subjects]
    for word in sorted(set().union(*tokenized)):
        expected = sum(word in t for t in tokenized)
        assert _count(es_client, prefix, {"match": {"email.subject.text": word}}) == expected, word
    # As ECS maps it: the field itself is the exact value (term queries, aggregations, rules).
    first = subjects[0]
    assert _count(es_client, prefix, {"term": {"email.subject": first}}) == subjects.count(first)
    word = first.split()[0]  # a word alone matches the keyword only where it is the whole subject
    assert _count(es_client, prefix, {"match": {"email.subject": word}}) == subjects.count(word)


def test_install_onto_an_index_of_the_previous_mapping(es_client: Any) -> None:
    """An index created before `email.subject` became ECS's keyword (+ `.text`) keeps its `text` subject and gets
    every new field, so the current month goes on accepting documents; the next month's index is all new."""
    p = f"esa-it-{uuid.uuid4().hex[:8]}"
    old = f"{p}-2026.11"
    try:
        props = {"email": {"properties": {"subject": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}}}
        es_client.indices.create(index=old, mappings={"dynamic": "strict", "properties": props})
        msgs = install(es_client, p, ilm=False)
        assert msgs[-1] == (
            f"mapping updated on {old}, keeping the type it has for email.subject (new indices get the new one)"
        )
        m = es_client.indices.get_mapping(index=old)[old]["mappings"]["properties"]
        assert m["email"]["properties"]["subject"]["type"] == "text"
        assert m["event"]["properties"]["ingested"] == {"type": "date"}
        assert m["ecs"]["properties"]["version"]["type"] == "keyword"
        doc = {"@timestamp": "2026-11-27T10:00:00.000Z", "ecs": {"version": "8.16.0"}, "email": {"subject": "Hi"}}
        es_client.index(index=old, id="x", document=doc, refresh="wait_for")
        new = f"{p}-2026.12"
        es_client.index(index=new, id="y", document={**doc, "@timestamp": "2026-12-01T00:00:00.000Z"}, refresh=True)
        subject = es_client.indices.get_mapping(index=new)[new]["mappings"]["properties"]["email"]["properties"]
        assert subject["subject"] == {"type": "keyword", "ignore_above": 1024, "fields": {"text": {"type": "text"}}}
        assert install(es_client, p, ilm=False)[-2:] == [msgs[-1], f"mapping updated on 1 other existing {p}-* indices"]
    finally:
        names = asset_names(p)
        es_client.options(ignore_status=404).indices.delete(index=names["pattern"], expand_wildcards="all")
        es_client.options(ignore_status=404).indices.delete_index_template(name=names["template"])
        for n in (names["settings"], names["mappings"]):
            es_client.options(ignore_status=404).cluster.delete_component_template(name=n)
