"""Sigma correlation rules as Elasticsearch aggregations (pySigma's Lucene backend converts no correlation rule).

A correlation *spec* is plain JSON (committed in `pipelines/sigma/out/elasticsearch-correlations.json`, made by
`enricher.assets.sigma`): the Lucene query of each base rule as pySigma converted it, the document fields to
group by, the timespan and the condition. This module needs no pySigma: it builds the search request
(`query_string` + nested `terms` + a `date_histogram` of fixed windows + `cardinality` or `filters`), runs it,
and evaluates the condition on the buckets in Python (the lab node has no painless, so no `bucket_selector`).

Windows are fixed buckets of `timespan` aligned to the epoch, as in the Splunk conversion (`bin _time span=…`)
and the ES|QL one (`date_trunc`): a burst that straddles a bucket boundary can be split in two.
"""

from __future__ import annotations

import operator
import re
from typing import Any

TERMS_SIZE = 10_000  # distinct values per group-by level; more are dropped (use a composite aggregation to page)
_OPS = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
    "neq": operator.ne,
}
_TIMESPAN = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def fixed_interval(timespan: str) -> str:
    """A Sigma timespan (`10m`, `1h`, `2d`) as a `date_histogram` fixed_interval (months and years are refused)."""
    if not _TIMESPAN.match(timespan):
        raise ValueError(f"timespan {timespan!r} has no fixed length (use s, m, h or d)")
    return timespan


def timespan_seconds(timespan: str) -> int:
    """A Sigma timespan (`10m`, `1h`) in seconds (months and years are refused)."""
    m = _TIMESPAN.match(fixed_interval(timespan))
    assert m is not None  # fixed_interval checked it
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def _query_string(query: str) -> dict[str, Any]:
    # Exactly how pySigma's Lucene backend embeds its queries in query DSL (its `dsl_lucene` output format).
    return {"query_string": {"query": query, "analyze_wildcard": True}}


def _window_agg(spec: dict[str, Any], time_field: str, windows: bool) -> dict[str, Any]:
    cond = spec["condition"]
    min_count = 1
    if spec["type"] == "event_count" and "gte" in cond:
        min_count = max(1, int(cond["gte"]))
    elif spec["type"] == "event_count" and "gt" in cond:
        min_count = int(cond["gt"]) + 1
    window: dict[str, Any] = {
        "date_histogram": {
            "field": time_field,
            "fixed_interval": fixed_interval(spec["timespan"]),
            "min_doc_count": min_count,
        }
    }
    if not windows:  # one window: the whole time range (a scheduled rule's look-back)
        window = {"filters": {"filters": {"range": {"match_all": {}}}}}
    if spec["type"] == "value_count":
        window["aggs"] = {"value_count": {"cardinality": {"field": cond["field"], "precision_threshold": 40_000}}}
    elif spec["type"] == "temporal":
        filters = {name: _query_string(q) for name, q in spec["queries"].items()}
        window["aggs"] = {"rules": {"filters": {"filters": filters}}}
    return window


def correlation_search(
    spec: dict[str, Any], time_range: dict[str, str] | None = None, time_field: str = "@timestamp", windows: bool = True
) -> dict[str, Any]:
    """The search body (size 0) of one correlation spec; `time_range` like {"gte": "now-2h"} limits `time_field`.

    `windows=False` counts over the whole time range instead of fixed windows of the timespan: what an Elastic
    Security rule does over its look-back (`time_field="event.ingested"`, `time_range` = [now - from, now]).
    """
    queries = [_query_string(q) for q in spec["queries"].values()]
    filters: list[dict[str, Any]] = [
        queries[0] if len(queries) == 1 else {"bool": {"should": queries, "minimum_should_match": 1}}
    ]
    if time_range:
        filters.append({"range": {time_field: time_range}})
    aggs: dict[str, Any] = {"window": _window_agg(spec, time_field, windows)}
    for level, field in reversed(list(enumerate(spec["group_by"]))):
        aggs = {f"group_{level}": {"terms": {"field": field, "size": TERMS_SIZE}, "aggs": aggs}}
    return {"size": 0, "track_total_hits": False, "query": {"bool": {"filter": filters}}, "aggs": aggs}


def _value(spec: dict[str, Any], bucket: dict[str, Any]) -> int:
    if spec["type"] == "event_count":
        return int(bucket["doc_count"])
    if spec["type"] == "value_count":
        return int(bucket["value_count"]["value"])
    return sum(1 for b in bucket["rules"]["buckets"].values() if b["doc_count"] > 0)  # temporal: rules seen


def _matches(spec: dict[str, Any], value: int) -> bool:
    cond = spec["condition"] or {"gte": len(spec["queries"])}  # temporal default: every referenced rule matched
    return all(_OPS[op](value, cond[op]) for op in _OPS if op in cond)


def evaluate(spec: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The alerts in a search response: [{"group": {field: value}, "window_start": iso, "value": n}], sorted."""
    alerts: list[dict[str, Any]] = []

    def walk(aggs: dict[str, Any], level: int, group: dict[str, Any]) -> None:
        if level == len(spec["group_by"]):
            buckets = aggs["window"]["buckets"]
            if isinstance(buckets, dict):  # windows=False: one keyed bucket, the time range
                buckets = [{"key_as_string": None, **b} for b in buckets.values()]
            for bucket in buckets:
                value = _value(spec, bucket)
                if _matches(spec, value):
                    alerts.append({"group": dict(group), "window_start": bucket["key_as_string"], "value": value})
            return
        field = spec["group_by"][level]
        for bucket in aggs[f"group_{level}"]["buckets"]:
            walk(bucket, level + 1, {**group, field: bucket.get("key_as_string", bucket["key"])})

    walk(response["aggregations"], 0, {})
    return sorted(alerts, key=lambda a: (a["window_start"], sorted(a["group"].items())))


def run(
    client: Any,
    index: str,
    spec: dict[str, Any],
    time_range: dict[str, str] | None = None,
    time_field: str = "@timestamp",
    windows: bool = True,
) -> list[dict[str, Any]]:
    """Run one correlation spec on `index` through an `elasticsearch` client and return its alerts."""
    body = correlation_search(spec, time_range, time_field, windows)
    response = client.search(index=index, **body)
    return evaluate(spec, response.body if hasattr(response, "body") else response)
