"""The Kibana bundle's queries on a real Elasticsearch ($ESA_ES_URL): each saved search returns exactly its sessions.

Kibana cannot run here, so this proves what Elasticsearch can: every saved search's Lucene query (with its
filter pills) runs as Kibana sends it (`query_string` with `analyze_wildcard`, filters in `bool.filter`) over a
known corpus (samples/demo-mail_logs.log + tests/data/kibana-corpus.log for the aborts overview;
tests/data/delivery-corpus.log and the delivery goldens' inputs for the delivery-health dashboard; replayed
in-process and indexed with the project's mapping under a prefix of its own), and returns exactly the
`event.id`s that a Python predicate over the same documents selects. Every Lens layer's aggregation (its
bucketed columns, in column order, over the documents its own query selects) runs too and gives the counts
computed in Python, multi-valued fields (`esa.bounces.code`, …) counted once per distinct value as a `terms`
aggregation does.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers

from enricher.assets import kibana
from enricher.cli import build_pipeline
from enricher.config import load
from enricher.edges.sinks.elasticsearch.assets import asset_names, bulk_action, install

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "samples" / "demo-mail_logs.log"
CORPUS = REPO / "tests" / "data" / "kibana-corpus.log"
DELIVERY_CORPUS = REPO / "tests" / "data" / "delivery-corpus.log"
DELIVERY_APPLIANCE = "esa3.example.com"
# Golden inputs with more delivery wordings (native lines get the appliance given here; syslog lines name theirs).
DELIVERY_GOLDENS = {
    "delivery-bounces": "esa4.example.com",
    "delivery-failures": "esa5.example.com",
    "delivery-bounce-wordings": "unused",
    "delivery-real-wording": "esa6.example.com",
}
RECEIVING = {"connection_lost", "inbound_timeout", "sender_quit", "receiving_aborted_unexplained"}


# -- helpers shared with test_sigma_es.py ---------------------------------------------------------------------


def replay(*sources: tuple[list[str], str]) -> list[dict[str, Any]]:
    """Documents of `esa-enricher replay` run in-process over (lines, appliance) sources, one pipeline."""
    cfg = load(None, {"time.default_timezone": "UTC", "time.reference_time": "2026-12-31T00:00:00Z"})
    pipeline = build_pipeline(cfg)
    docs: list[dict[str, Any]] = []
    for lines, appliance in sources:
        docs.extend(pipeline.process_lines(lines, appliance))
    docs.extend(pipeline.flush())
    assert pipeline.summary()["unparsed"] == 0
    return [d for d in docs if (d.get("event") or {}).get("id")]  # sessions only (no pipeline_error)


def file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def index_docs(client: Any, prefix: str, docs: list[dict[str, Any]]) -> None:
    """Install the templates under `prefix` and index `docs` (strict mapping: every document must be accepted)."""
    install(client, prefix=prefix)
    ok, errors = helpers.bulk(client, (bulk_action(d, prefix) for d in docs), raise_on_error=False, refresh="wait_for")
    assert errors == [] and ok == len(docs), errors[:3]


def cleanup(client: Any, prefix: str) -> None:
    names = asset_names(prefix)
    client.options(ignore_status=404).indices.delete(index=names["pattern"], expand_wildcards="all")
    client.options(ignore_status=404).indices.delete_index_template(name=names["template"])
    for n in (names["settings"], names["mappings"]):
        client.options(ignore_status=404).cluster.delete_component_template(name=n)
    client.options(ignore_status=(400, 404)).ilm.delete_lifecycle(name=names["lifecycle"])


def query_string(query: str) -> dict[str, Any]:
    """A Lucene query as Kibana (and pySigma's dsl_lucene output) sends it."""
    return {"query_string": {"query": query, "analyze_wildcard": True}}


def search_ids(client: Any, index: str, query: dict[str, Any]) -> set[str]:
    res = client.search(index=index, query=query, size=1000, source=["event.id"])
    assert res["hits"]["total"]["value"] < 1000
    return {h["_source"]["event"]["id"] for h in res["hits"]["hits"]}


# -- the oracle: what each saved search must return, computed from the documents alone -------------------------


def _get(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _values(doc: Any, dotted: str) -> set[Any]:
    """Every value of a field, through arrays of objects (what Elasticsearch indexes for the dotted path)."""
    head, _, rest = dotted.partition(".")
    items = doc if isinstance(doc, list) else [doc]
    out: set[Any] = set()
    for item in items:
        v = item.get(head) if isinstance(item, dict) else None
        if v is None:
            continue
        if rest:
            out |= _values(v, rest)
        else:
            out |= set(v) if isinstance(v, list) else {v}
    return out


def _delivery_problem(d: dict[str, Any]) -> bool:
    return d.get("abort_layer") == "delivery" or d.get("abort_reason") == "tls_failed_outbound"


def _aborted(d: dict[str, Any]) -> bool:
    return bool(d.get("abort_reason")) and d["abort_reason"] not in {"quit_without_message", "soft_bounce"}


EXPECTED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "esa-aborted-receptions": lambda d: d.get("abort_reason") in RECEIVING,
    "esa-transport-aborts": lambda d: d.get("abort_layer") == "transport",
    "esa-inbound-timeouts": lambda d: d.get("abort_reason") == "inbound_timeout",
    "esa-sender-quit-null-sender": lambda d: (
        d.get("abort_reason") == "sender_quit" and _get(d, "esa.envelope.null_sender") is True
    ),
    "esa-aborted-sessions": _aborted,
    "esa-aborted-sessions-one-appliance": lambda d: _aborted(d) and _get(d, "observer.hostname") == "esa1.example.com",
    # Delivery health.
    "esa-delivery-problems": _delivery_problem,
    "esa-delivery-bounces": lambda d: d.get("abort_reason") in {"hard_bounce", "dns_hard_bounce"},
    "esa-delivery-expired": lambda d: d.get("abort_reason") == "expired_in_queue",
    "esa-delivery-delays": lambda d: bool(_values(d, "esa.delays.code")),
    "esa-delivery-tls-failures": lambda d: "failed" in _values(d, "esa.deliveries.tls.status"),
}

# The documents each Lens layer counts (its own query, as a predicate).
LENS_SELECTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "esa-aborts-over-time-by-layer": lambda d: d.get("abort_layer") is not None,
    "esa-top-source-ips-by-abort-reason": lambda d: d.get("abort_reason") is not None,
    "esa-top-sender-domains-by-abort-reason": lambda d: d.get("abort_reason") is not None,
    "esa-delivery-problems-over-time": _delivery_problem,
    "esa-bounce-codes-by-reason": lambda d: bool(_values(d, "esa.bounces.code")),
    "esa-delay-codes-by-destination": lambda d: bool(_values(d, "esa.delays.code")),
    "esa-delivery-problems-by-recipient": _delivery_problem,
    "esa-outbound-tls-failures": EXPECTED["esa-delivery-tls-failures"],
}

# What tests/data/delivery-corpus.log was written to contain (MID: its story), per saved search: the searches
# must return at least these messages of that corpus, and none of the others.
DELIVERY_CASES: dict[str, set[int]] = {
    # 8401 delivered over TLS; 8402 5.1.0 (550 user unknown) and 8403 5.7.1 bounces at example.org; 8404 DNS
    # hard bounce; 8405 delayed 4.3.2 then delivered; 8406 outbound TLS failed, never delivered; 8407 TLS failed
    # for its partner.example recipient, its other recipient delivered; 8408 TLS failed, delivered on a retry to
    # another MX; 8409 delayed twice (4.2.2) then expired (5.4.7); 8410 delayed 4.2.2, still waiting.
    "esa-delivery-problems": {8402, 8403, 8404, 8406, 8409, 8410},
    "esa-delivery-bounces": {8402, 8403, 8404},
    "esa-delivery-expired": {8409},
    "esa-delivery-delays": {8405, 8406, 8407, 8408, 8409, 8410},
    "esa-delivery-tls-failures": {8406, 8407, 8408},
}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    goldens = [(file_lines(REPO / "tests" / "golden" / g / "input.log"), a) for g, a in DELIVERY_GOLDENS.items()]
    emitted = replay(
        (file_lines(DEMO), "esa-demo.example.com"),
        (file_lines(CORPUS), "unused"),
        (file_lines(DELIVERY_CORPUS), DELIVERY_APPLIANCE),
        *goldens,
    )
    return list({d["event"]["id"]: d for d in emitted}.values())  # a session written again: the last one is indexed


@pytest.fixture(scope="module")
def prefix(es_client: Any, docs: list[dict[str, Any]]) -> Iterator[str]:
    p = f"esa-it-kibana-{uuid.uuid4().hex[:8]}"
    try:
        index_docs(es_client, p, docs)
        yield p
    finally:
        cleanup(es_client, p)


def _objects(type_: str) -> dict[str, dict[str, Any]]:
    return {
        o["id"]: o
        for o in map(json.loads, kibana.BUNDLE.read_text(encoding="utf-8").splitlines())
        if o["type"] == type_
    }


def kibana_query(search_source: dict[str, Any]) -> dict[str, Any]:
    """The Elasticsearch query of a saved search: its Lucene query and its enabled filter pills."""
    q = search_source["query"]
    assert q["language"] == "lucene"
    must = [query_string(q["query"])] if q["query"] else []
    must_not = []
    for f in search_source.get("filter", []):
        if f["meta"].get("disabled"):
            continue
        (must_not if f["meta"].get("negate") else must).append(f["query"])
    return {"bool": {"filter": must, "must_not": must_not}}


def test_every_saved_search_has_an_oracle() -> None:
    assert set(_objects("search")) == set(EXPECTED)


@pytest.mark.parametrize("search_id", sorted(EXPECTED))
def test_saved_search_returns_exactly_its_sessions(
    es_client: Any, prefix: str, docs: list[dict[str, Any]], search_id: str
) -> None:
    source = json.loads(_objects("search")[search_id]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    expected = {d["event"]["id"] for d in docs if EXPECTED[search_id](d)}
    assert expected, f"the corpus has no case for {search_id}"
    assert len(expected) < len(docs)  # the search selects, it does not return everything
    assert search_ids(es_client, prefix, kibana_query(source)) == expected


@pytest.mark.parametrize("search_id", sorted(DELIVERY_CASES))
def test_delivery_searches_find_the_corpus_cases(
    es_client: Any, prefix: str, docs: list[dict[str, Any]], search_id: str
) -> None:
    source = json.loads(_objects("search")[search_id]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    corpus = {d["event"]["id"]: d["esa"]["mid"] for d in docs if _get(d, "observer.hostname") == DELIVERY_APPLIANCE}
    got = {corpus[i] for i in search_ids(es_client, prefix, kibana_query(source)) if i in corpus}
    assert got == DELIVERY_CASES[search_id]


def test_the_appliance_filter_selects_the_edited_appliance(
    es_client: Any, prefix: str, docs: list[dict[str, Any]]
) -> None:
    obj = _objects("search")["esa-aborted-sessions-one-appliance"]
    source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    pill = source["filter"][0]
    pill["meta"]["params"]["query"] = "esa2.example.com"  # what "edit the value" does to the pill
    pill["query"] = {"match_phrase": {"observer.hostname": "esa2.example.com"}}
    expected = {d["event"]["id"] for d in docs if _aborted(d) and _get(d, "observer.hostname") == "esa2.example.com"}
    assert expected and search_ids(es_client, prefix, kibana_query(source)) == expected


def _lens_aggs(columns: dict[str, Any], order: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Nested aggregations of a Lens layer's bucketed columns (date histograms at a fixed 1h), and their fields."""
    bucketed = [columns[c] for c in order if columns[c]["isBucketed"]]
    aggs: dict[str, Any] = {}
    for i, col in reversed(list(enumerate(bucketed))):
        if col["operationType"] == "terms":
            agg = {"terms": {"field": col["sourceField"], "size": col["params"]["size"], "order": {"_count": "desc"}}}
        elif col["operationType"] == "date_histogram":
            agg = {"date_histogram": {"field": col["sourceField"], "fixed_interval": "1h"}}
        else:
            raise AssertionError(f"no translation for {col['operationType']}")
        if aggs:
            agg["aggs"] = aggs
        aggs = {f"b{i}": agg}
    return aggs, [c["sourceField"] for c in bucketed]


def _flatten(aggs: dict[str, Any], depth: int, level: int = 0, path: tuple[Any, ...] = ()) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for b in aggs[f"b{level}"]["buckets"]:
        key = path + (b.get("key_as_string", b["key"]),)
        if level + 1 == depth:
            if b["doc_count"]:
                out[key] = b["doc_count"]
        else:
            out.update(_flatten(b, depth, level + 1, key))
    return out


def _hour(stamp: str) -> str:
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return t.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_every_lens_has_an_oracle() -> None:
    assert set(_objects("lens")) == set(LENS_SELECTS)


@pytest.mark.parametrize("lens_id", sorted(LENS_SELECTS))
def test_lens_layer_aggregates_as_computed_in_python(
    es_client: Any, prefix: str, docs: list[dict[str, Any]], lens_id: str
) -> None:
    state = _objects("lens")[lens_id]["attributes"]["state"]
    query = state["query"]
    assert query["language"] == "lucene" and query["query"]
    selected = [d for d in docs if LENS_SELECTS[lens_id](d)]
    assert search_ids(es_client, prefix, query_string(query["query"])) == {d["event"]["id"] for d in selected}
    for layer in state["datasourceStates"]["formBased"]["layers"].values():
        aggs, fields = _lens_aggs(layer["columns"], layer["columnOrder"])
        res = es_client.search(index=prefix, size=0, query=query_string(query["query"]), aggs=aggs)
        got = _flatten(res["aggregations"], len(fields))
        expected: Counter[tuple[Any, ...]] = Counter()
        for d in selected:
            values = [{_hour(v) for v in _values(d, f)} if f == "@timestamp" else _values(d, f) for f in fields]
            expected.update(itertools.product(*values))  # a terms bucket per distinct value, nested
        assert got == expected and len(expected) > 1
