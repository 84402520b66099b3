"""The Elastic Security rules fire on a real Elasticsearch ($ESA_ES_URL) with their own time semantics.

Documents are written the way `run` writes them: by the real Elasticsearch sink, each when its session ended plus
the flush interval (the sink's clock is simulated: `event.ingested` is the time of the bulk request, as in `run`).
The trigger corpus has sessions that lasted 5 minutes to 2 hours (their @timestamp is the session start).
Each rule then runs as Kibana runs it, every `interval` over a timeline: its query, `from` look-back, and
`timestamp_override` (with the fallback to @timestamp). Threshold and query rules are replayed from their own
JSON. The node has no ES|QL (services/elasticsearch/README.md), so each ES|QL rule is replayed as the equivalent
aggregation of its correlation spec (same base queries, group-by, count and condition) over the same look-back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enricher.assets import sigma_es
from enricher.assets.sigma import OUT_DIR, SCHEDULE_MINUTES
from enricher.config import Config
from enricher.edges.sinks.elasticsearch import ElasticsearchSink
from enricher.edges.sinks.elasticsearch import encoder as es_encoder
from enricher.edges.sinks.elasticsearch.assets import install
from tests.integration.test_kibana_queries import CORPUS, DEMO, cleanup, file_lines, query_string, replay
from tests.integration.test_sigma_es import SIG1, SIG2, SIG3, Lines

pytestmark = pytest.mark.integration

DAY = datetime(2026, 11, 29)
FLUSH = timedelta(seconds=Config().elasticsearch.flush_interval_seconds)


def long_lost(c: Lines, host: str, start: datetime, end: datetime, ip: str) -> None:
    """A message session open from `start` whose connection was lost at `end` (connection_lost)."""
    icid, mid = c.message(host, start, ip, "news@example.org", ["a@corp.example"])
    for text in (f"Message aborted MID {mid} Receiving aborted", f"Message finished MID {mid} aborted"):
        c.add(host, end, text)
    c.add(host, end, f"ICID {icid} lost")
    c.add(host, end, f"ICID {icid} close")


def slow_accepted(c: Lines, host: str, start: datetime, delivered: datetime, ip: str) -> None:
    """A message accepted at `start`, its delivery delayed every 25 minutes, delivered (session end) at `delivered`."""
    icid, mid = c.message(host, start, ip, "hello@example.net", ["c@corp.example"])
    c.add(host, start + timedelta(seconds=2), f"MID {mid} ready 1024 bytes from <hello@example.net>")
    c.add(host, start + timedelta(seconds=2), f"ICID {icid} close")
    c.add(host, start + timedelta(seconds=2), f"MID {mid} queued for delivery")
    t, dcid = start + timedelta(seconds=3), 90_000 + mid
    while t + timedelta(minutes=25) < delivered:
        c.add(host, t, f"Delivery start DCID {dcid} MID {mid} to RID [0]")
        c.add(
            host, t, f"Delayed: DCID {dcid} MID {mid} to RID 0 - 4.1.0 - Unknown address error ('451', ['Try later'])[]"
        )
        t += timedelta(minutes=25)
    c.add(host, delivered, f"Delivery start DCID {dcid} MID {mid} to RID [0]")
    c.add(host, delivered, f"Message done DCID {dcid} MID {mid} to RID [0]")
    c.add(host, delivered, f"Message finished MID {mid} done")


def trigger_lines() -> list[str]:
    """Each correlation's trigger (in its own 4-hour slot, so look-backs never join two) and its near miss."""
    c = Lines()
    # minutes: one line at the start, one at the end (under the stitcher's 1-hour idle timeout); the 2-hour sessions
    # are slow deliveries below, which log a line at each retry.
    durations = [5, 11, 17, 23, 29, 35, 41, 47, 53, 58]
    slot = DAY.replace(hour=4)
    cut = slot + timedelta(hours=2)  # a firewall cuts long-open connections within 8 minutes
    for i, d in enumerate(durations[:5]):  # one IP: 5 losses (sessions of 5 min to 53 min)
        end = cut + timedelta(minutes=2 * i)
        long_lost(c, SIG1, end - timedelta(minutes=d), end, "198.51.100.50")
    for i, d in enumerate(durations[5:9]):  # near miss: 4 losses from another IP
        end = cut + timedelta(minutes=2 * i, seconds=30)
        long_lost(c, SIG1, end - timedelta(minutes=d), end, "198.51.100.51")
    slot = DAY.replace(hour=8)
    cut = slot + timedelta(hours=2)
    for i, d in enumerate(durations):  # 10 IPs on one appliance, sessions of 5 min to 1 h, all lost within 9 min
        end = cut + timedelta(seconds=50 * i)
        long_lost(c, SIG2, end - timedelta(minutes=d), end, f"198.51.100.{60 + i}")
    for i, d in enumerate(durations[:9]):  # near miss: 9 IPs on another appliance
        end = cut + timedelta(seconds=50 * i + 7)
        long_lost(c, SIG3, end - timedelta(minutes=d), end, f"198.51.100.{100 + i}")
    slot = DAY.replace(hour=12)
    for i in range(5):  # probing: 5 quits x 2 accepted recipients = 10 distinct in 40 minutes
        rcpts = [f"user{2 * i}@corp.example", f"user{2 * i + 1}@corp.example"]
        c.sender_quit(SIG1, slot + timedelta(minutes=10 * i), "203.0.113.70", rcpts)
    for i in range(3):  # near miss: 9 distinct accepted recipients
        rcpts = [f"u{3 * i + k}@corp.example" for k in range(3)]
        c.sender_quit(SIG1, slot + timedelta(minutes=10 * i, seconds=7), "203.0.113.71", rcpts)
    for i in range(4):  # harvest: 4 quits x 3 rejected recipients = 12 distinct
        rejected = [f"guess{3 * i + k}@corp.example" for k in range(3)]
        c.sender_quit(SIG1, slot + timedelta(minutes=8 * i, seconds=11), "203.0.113.72", [], rejected)
    slot = DAY.replace(hour=16)
    for i in range(10):  # 10 inbound timeouts (each 5 minutes long) ending within 9 minutes on one appliance
        c.timeout(SIG3, slot + timedelta(seconds=10 + 55 * i), f"198.51.100.{80 + i}")
    for i in range(9):  # near miss: 9 timeouts on another appliance
        c.timeout(SIG2, slot + timedelta(seconds=10 + 55 * i), f"198.51.100.{120 + i}")
    slot = DAY.replace(hour=20)
    # A message accepted at 20:00 and delivered at 22:00 (2 h), a HAT reject of the same IP at 22:10: in the
    # session-start (@timestamp) windows they are 2 h apart; as written they are 10 minutes apart: alert.
    slow_accepted(c, SIG1, slot, slot + timedelta(hours=2), "203.0.113.90")
    c.reject(SIG1, slot + timedelta(hours=2, minutes=10), "203.0.113.90")
    c.reject(SIG1, slot + timedelta(minutes=30), "203.0.113.91")  # near miss: rejected only
    slow_accepted(c, SIG1, slot + timedelta(minutes=40), slot + timedelta(minutes=90), "198.51.100.200")
    return c.text()


EXPECTED = {
    "esa_connection_lost_burst_single_ip": {("source.ip", "198.51.100.50")},
    "esa_connection_lost_burst_many_ips": {("observer.hostname", SIG2)},
    "esa_sender_quit_probing_accepted": {("source.ip", "203.0.113.70")},
    "esa_sender_quit_probing_rejected": {("source.ip", "203.0.113.72")},
    "esa_inbound_timeout_surge": {("observer.hostname", SIG3)},
    "esa_hat_reject_then_accepted": {("source.ip", "203.0.113.90")},
}


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_like_run(client: Any, prefix: str, docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Index `docs` through the real sink, each in the bulk request of the first flush after its session ended."""
    install(client, prefix=prefix)
    letters: list[Any] = []
    sink = ElasticsearchSink(client, prefix, lambda doc, err, src: letters.append(err))
    ticks: dict[datetime, list[dict[str, Any]]] = {}
    for d in docs:
        end = _ts(d["event"].get("end") or d["@timestamp"])
        tick = datetime.fromtimestamp(-(-end.timestamp() // FLUSH.total_seconds()) * FLUSH.total_seconds(), UTC)
        ticks.setdefault(tick + FLUSH, []).append(d)
    for when in sorted(ticks):
        monkeypatch.setattr(es_encoder, "ingested_now", lambda when=when: _iso(when))
        for d in ticks[when]:
            sink.add(d)
        sink.flush()
    sink.close()
    client.indices.refresh(index=f"{prefix}-*")
    assert letters == []


def _rules(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (OUT_DIR / name).read_text(encoding="utf-8").splitlines()]


def _seconds(expr: str, prefix: str = "now-") -> int:
    assert expr.startswith(prefix) and expr.endswith("s"), expr
    return int(expr[len(prefix) : -1])


def _time_filter(rule: dict[str, Any], gte: datetime, lte: datetime) -> dict[str, Any]:
    """Kibana's range of a rule run: on timestamp_override, else on @timestamp where the override is missing."""
    rng = {"gte": _iso(gte), "lte": _iso(lte), "format": "strict_date_optional_time"}
    override = rule["timestamp_override"]
    fallback = {"bool": {"filter": [{"range": {"@timestamp": rng}}], "must_not": [{"exists": {"field": override}}]}}
    clauses = [{"range": {override: rng}}] + ([] if rule["timestamp_override_fallback_disabled"] else [fallback])
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


_WRITTEN: dict[str, list[datetime]] = {}  # index -> every document's event.ingested (the corpora never change)


def run_times(client: Any, index: str, rule: dict[str, Any]) -> list[datetime]:
    """The runs of the rule (every `interval`, on a grid not aligned to the documents) whose look-back holds one."""
    if index not in _WRITTEN:
        res = client.search(index=index, size=10_000, source=False, docvalue_fields=["event.ingested"])
        _WRITTEN[index] = sorted(_ts(h["fields"]["event.ingested"][0]) for h in res["hits"]["hits"])
        assert _WRITTEN[index] and len(_WRITTEN[index]) < 10_000
    written = _WRITTEN[index]
    interval, lookback = timedelta(minutes=SCHEDULE_MINUTES), timedelta(seconds=_seconds(rule["from"]))
    assert rule["interval"] == f"{SCHEDULE_MINUTES}m"
    t, out = written[0] - timedelta(seconds=97), []  # an arbitrary phase
    while t <= written[-1] + lookback + interval:
        if any(t - lookback <= w <= t for w in written):  # a run that sees nothing cannot alert
            out.append(t)
        t += interval
    return out


def _msearch(client: Any, index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    responses: list[dict[str, Any]] = []
    for i in range(0, len(bodies), 100):
        searches = [x for b in bodies[i : i + 100] for x in ({"index": index}, b)]
        responses += client.msearch(searches=searches)["responses"]
    assert all("error" not in r for r in responses), responses[:1]
    return responses


def _windowed(rule: dict[str, Any], now: datetime, query: dict[str, Any]) -> dict[str, Any]:
    window = _time_filter(rule, now - timedelta(seconds=_seconds(rule["from"])), now)
    return {"bool": {"filter": [query, window]}}


def threshold_alerts(client: Any, index: str, rule: dict[str, Any]) -> set[tuple[str, str]]:
    """The groups a threshold rule alerts on over the timeline: its query, threshold and look-back, per run."""
    th, fields = rule["threshold"], rule["threshold"]["field"]
    assert len(fields) == 1, "one group-by field: a terms aggregation is Kibana's grouping"
    aggs: dict[str, Any] = {"g": {"terms": {"field": fields[0], "size": 10_000, "min_doc_count": th["value"]}}}
    for card in th.get("cardinality", []):
        aggs["g"]["aggs"] = {"c": {"cardinality": {"field": card["field"]}}}
    bodies = [
        {"size": 0, "query": _windowed(rule, now, query_string(rule["query"])), "aggs": aggs}
        for now in run_times(client, index, rule)
    ]
    out = set()
    for res in _msearch(client, index, bodies):
        for b in res["aggregations"]["g"]["buckets"]:
            if all(b["c"]["value"] >= c["value"] for c in th.get("cardinality", [])):
                out.add((fields[0], b["key"]))
    return out


def esql_alerts(client: Any, index: str, rule: dict[str, Any], spec: dict[str, Any]) -> set[tuple[str, str]]:
    """The groups an ES|QL rule alerts on over the timeline, replayed as its correlation's aggregation."""
    assert rule["rule_id"] == spec["id"]
    bodies = []
    for now in run_times(client, index, rule):
        body = sigma_es.correlation_search(spec, windows=False)
        body["query"] = _windowed(rule, now, body["query"])
        bodies.append(body)
    out = set()
    for res in _msearch(client, index, bodies):
        for alert in sigma_es.evaluate(spec, res):
            ((field, value),) = alert["group"].items()
            out.add((field, value))
    return out


def _specs() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in json.loads((OUT_DIR / "elasticsearch-correlations.json").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def corpora(es_client: Any) -> Iterator[dict[str, str]]:
    run = uuid.uuid4().hex[:8]
    prefixes = {"trigger": f"esa-it-fire-{run}-t", "benign": f"esa-it-fire-{run}-b"}
    trigger = replay((trigger_lines(), "unused"))
    benign = replay((file_lines(DEMO), "esa-demo.example.com"), (file_lines(CORPUS), "unused"))
    with pytest.MonkeyPatch.context() as mp:
        try:
            write_like_run(es_client, prefixes["trigger"], trigger, mp)
            write_like_run(es_client, prefixes["benign"], benign, mp)
            yield {k: f"{p}-*" for k, p in prefixes.items()}
        finally:
            for p in prefixes.values():
                cleanup(es_client, p)


def test_the_trigger_corpus_has_long_sessions(es_client: Any, corpora: dict[str, str]) -> None:
    res = es_client.search(index=corpora["trigger"], size=0, aggs={"d": {"stats": {"field": "event.duration"}}})
    assert res["aggregations"]["d"]["max"] >= 2 * 3600e9  # a 2-hour session
    slow = es_client.count(index=corpora["trigger"], query={"range": {"event.duration": {"gte": 300e9}}})["count"]
    assert slow >= 40  # timeouts, cut connections, slow deliveries: 5 minutes and more


@pytest.mark.parametrize("kind", ["trigger", "benign"])
def test_threshold_rules_fire_exactly_on_their_trigger(es_client: Any, corpora: dict[str, str], kind: str) -> None:
    names = {s["id"]: s["name"] for s in _specs().values()}
    rules = [r for r in _rules("elastic-security-rules.ndjson") if r["type"] == "threshold"]
    assert len(rules) == 5
    for rule in rules:
        expected = EXPECTED[names[rule["rule_id"]]] if kind == "trigger" else set()
        assert threshold_alerts(es_client, corpora[kind], rule) == expected, rule["name"]


@pytest.mark.parametrize("kind", ["trigger", "benign"])
def test_esql_rules_fire_exactly_on_their_trigger(es_client: Any, corpora: dict[str, str], kind: str) -> None:
    specs = {s["id"]: s for s in _specs().values()}
    rules = _rules("elastic-security-esql-rules.ndjson")
    assert {r["rule_id"] for r in rules} == set(specs)  # all six, the temporal one too
    for rule in rules:
        spec = specs[rule["rule_id"]]
        expected = EXPECTED[spec["name"]] if kind == "trigger" else set()
        assert esql_alerts(es_client, corpora[kind], rule, spec) == expected, rule["name"]


def test_query_rules_see_every_session_once_written(es_client: Any, corpora: dict[str, str]) -> None:
    """Each building-block query rule's runs together select every matching session, however long it lasted."""
    for rule in [r for r in _rules("elastic-security-rules.ndjson") if r["type"] == "query"]:
        index = corpora["trigger"]
        every = es_client.search(index=index, query=query_string(rule["query"]), size=1000, source=["event.id"])
        expected = {h["_source"]["event"]["id"] for h in every["hits"]["hits"]}
        bodies = [
            {"size": 1000, "query": _windowed(rule, now, query_string(rule["query"])), "_source": ["event.id"]}
            for now in run_times(es_client, index, rule)
        ]
        seen = {h["_source"]["event"]["id"] for r in _msearch(es_client, index, bodies) for h in r["hits"]["hits"]}
        assert expected and seen == expected, rule["name"]


def test_the_old_lookback_on_timestamp_misses_the_long_sessions(es_client: Any, corpora: dict[str, str]) -> None:
    """The same threshold rules with pySigma's defaults (now-5m on @timestamp) never fire on this corpus."""
    for rule in [r for r in _rules("elastic-security-rules.ndjson") if r["type"] == "threshold"]:
        old = {
            **rule,
            "from": "now-300s",
            "timestamp_override": "@timestamp",
            "timestamp_override_fallback_disabled": True,
        }
        assert threshold_alerts(es_client, corpora["trigger"], old) == set(), rule["name"]
