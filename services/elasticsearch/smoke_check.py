"""Smoke check of the lab Elasticsearch node with the stock Python client.

Usage (node started with `services/elasticsearch/es.sh up`):

    python services/elasticsearch/smoke_check.py [--url http://127.0.0.1:9200] [--bench 100000]

Needs the `elasticsearch` package (major version 9, matching the server). Creates and deletes indices and
templates named `esa-smoke-*`. Prints one line per check and a feature table; exits non-zero if a core check
(the ones the enricher's sink relies on) fails. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

from elasticsearch import ApiError, Elasticsearch, helpers

P = "esa-smoke"
failures: list[str] = []


def check(name: str, cond: bool, detail: object = "") -> None:
    print(f"{'ok  ' if cond else 'FAIL'} {name}{(': ' + str(detail)) if detail != '' else ''}")
    if not cond:
        failures.append(name)


def probe(name: str, fn) -> None:
    """Optional feature: report whether it works, never fail the run."""
    try:
        r = fn()
        body = getattr(r, "body", r)
        print(f"yes  {name}: {str(body)[:160]}")
    except ApiError as e:
        err = e.body.get("error") if isinstance(e.body, dict) else e.body
        reason = err.get("reason") if isinstance(err, dict) else err
        if isinstance(err, dict) and err.get("root_cause") and err["root_cause"][0].get("reason") != reason:
            reason = f"{reason} / {err['root_cause'][0].get('type')}: {err['root_cause'][0].get('reason')}"
        print(f"no   {name}: HTTP {e.meta.status} {str(reason)[:200]}")
    except Exception as e:  # noqa: BLE001 - report anything
        print(f"no   {name}: {type(e).__name__}: {str(e)[:200]}")


def cleanup(es: Elasticsearch) -> None:
    es.options(ignore_status=404).indices.delete(index=f"{P}-*", expand_wildcards="all")
    try:
        es.options(ignore_status=404).indices.delete_index_template(name=f"{P}-*")
        es.options(ignore_status=404).cluster.delete_component_template(name=f"{P}-*")
    except ApiError as e:  # templates still used by a data stream (see --data-streams)
        print(f"note: templates left in place: {e}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ESA_ES_URL", "http://127.0.0.1:9200"))
    ap.add_argument("--bench", type=int, default=100_000, help="docs for the bulk rate measurement (0: skip)")
    ap.add_argument("--data-streams", action="store_true",
                    help="also probe data streams (leaves an undeletable data stream behind: use on a throwaway node)")
    args = ap.parse_args()
    es = Elasticsearch(args.url, request_timeout=120)

    info = es.info()
    check("info()", info["version"]["number"].startswith("9."), info["version"]["number"])
    check("ping()", es.ping())
    cleanup(es)

    # --- templates + write alias -------------------------------------------------------------------------------
    es.cluster.put_component_template(
        name=f"{P}-mappings",
        template={
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "@timestamp": {"type": "date"},
                    "host": {"type": "keyword"},
                    "client_ip": {"type": "ip"},
                    "bytes": {"type": "long"},
                    "message": {"type": "text"},
                    "level": {"type": "keyword", "normalizer": "lowercase"},
                    "raw": {"type": "keyword", "index": False},
                    "blob": {"type": "object", "enabled": False},
                },
            }
        },
    )
    es.indices.put_index_template(
        name=f"{P}-logs",
        index_patterns=[f"{P}-logs-*"],
        composed_of=[f"{P}-mappings"],
        template={"settings": {"number_of_shards": 1, "number_of_replicas": 0}},
        priority=500,
    )
    es.indices.create(index=f"{P}-logs-000001", aliases={f"{P}-logs": {"is_write_index": True}})
    m = es.indices.get_mapping(index=f"{P}-logs-000001")
    props = m[f"{P}-logs-000001"]["mappings"]["properties"]
    check("composable template applied", props["client_ip"]["type"] == "ip" and props["raw"]["index"] is False)

    # --- bulk 10k through the alias ----------------------------------------------------------------------------
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    hosts = ["web-1", "web-2", "db-1", "cache-1"]

    def docs(n: int, index: str):
        for i in range(n):
            yield {
                "_index": index,
                "_source": {
                    "@timestamp": (t0 + dt.timedelta(seconds=i * 30)).isoformat(),
                    "host": hosts[i % 4],
                    "client_ip": f"10.0.{(i // 256) % 256}.{i % 256}",
                    "bytes": i,
                    "message": f"GET /item/{i} status {200 if i % 10 else 500}",
                    "level": "ERROR" if i % 10 == 0 else "Info",
                    "raw": f"raw line {i}",
                    "blob": {"anything": [i, "x"]},
                },
            }

    ok, errors = helpers.bulk(es, docs(10_000, f"{P}-logs"), chunk_size=1000)
    check("helpers.bulk 10000 via write alias", ok == 10_000 and not errors, ok)
    es.indices.refresh(index=f"{P}-logs")
    check("count", es.count(index=f"{P}-logs")["count"] == 10_000)

    r = es.search(index=f"{P}-logs", query={"term": {"host": "db-1"}}, size=0, track_total_hits=True)
    check("term query", r["hits"]["total"]["value"] == 2_500)
    r = es.search(index=f"{P}-logs", query={"range": {"bytes": {"gte": 100, "lt": 200}}}, size=0)
    check("range query (long)", r["hits"]["total"]["value"] == 100)
    r = es.search(index=f"{P}-logs", query={"range": {"@timestamp": {"gte": "2026-01-01T01:00:00Z", "lt": "2026-01-01T02:00:00Z"}}}, size=0)
    check("range query (date)", r["hits"]["total"]["value"] == 120)
    r = es.search(index=f"{P}-logs", query={"term": {"client_ip": "10.0.0.0/24"}}, size=0)
    check("ip CIDR term query", r["hits"]["total"]["value"] > 0, r["hits"]["total"]["value"])
    r = es.search(
        index=f"{P}-logs",
        query={"bool": {"filter": [{"term": {"level": "error"}}], "must": [{"match": {"message": "status 500"}}], "must_not": [{"term": {"host": "web-1"}}]}},
        size=0,
    )
    check("bool query + match + lowercase normalizer", r["hits"]["total"]["value"] == 500, r["hits"]["total"]["value"])
    r = es.search(
        index=f"{P}-logs",
        size=0,
        aggs={
            "hosts": {"terms": {"field": "host"}},
            "per_hour": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}},
            "b": {"stats": {"field": "bytes"}},
        },
    )
    check("terms aggregation", len(r["aggregations"]["hosts"]["buckets"]) == 4)
    check("date_histogram", sum(b["doc_count"] for b in r["aggregations"]["per_hour"]["buckets"]) == 10_000)
    # keyword with index:false keeps doc_values, so ES still answers term queries on it (slowly, from doc values)
    r = es.search(index=f"{P}-logs", query={"term": {"raw": "raw line 1"}}, size=0)
    check("term query on index:false keyword (doc-values scan)", r["hits"]["total"]["value"] == 1)

    # --- explicit _id: overwrite, not duplicate ------------------------------------------------------------------
    d = next(docs(1, f"{P}-logs"))["_source"]
    r1 = es.index(index=f"{P}-logs", id="fixed-1", document=d)
    r2 = es.index(index=f"{P}-logs", id="fixed-1", document={**d, "bytes": 42})
    es.indices.refresh(index=f"{P}-logs")
    check("explicit _id twice -> updated", r1["result"] == "created" and r2["result"] == "updated" and r2["_version"] == 2)
    check("count after overwrite", es.count(index=f"{P}-logs")["count"] == 10_001)

    # --- per-item error on a mapping conflict -----------------------------------------------------------------
    bad = [
        {"_index": f"{P}-logs", "_id": "good-1", "_source": d},
        {"_index": f"{P}-logs", "_id": "bad-1", "_source": {**d, "bytes": "not-a-number"}},
        {"_index": f"{P}-logs", "_id": "bad-2", "_source": {**d, "unknown_field": 1}},
    ]
    ok, errs = helpers.bulk(es, bad, raise_on_error=False)
    statuses = sorted(e["index"]["status"] for e in errs)
    check("bulk per-item 400 on mapping conflict", ok == 1 and statuses == [400, 400], [e["index"]["error"]["type"] for e in errs])

    # --- optional features ----------------------------------------------------------------------------------------
    print("--- feature probes (yes/no) ---")
    probe("ILM PUT _ilm/policy", lambda: es.ilm.put_lifecycle(name=f"{P}-policy", policy={"phases": {"hot": {"actions": {}}}}))
    probe("ES|QL POST _query", lambda: es.esql.query(query=f"FROM {P}-logs | LIMIT 1"))
    probe("EQL search", lambda: es.eql.search(index=f"{P}-logs", query="any where true"))
    probe("painless script_fields", lambda: es.search(index=f"{P}-logs", size=1, script_fields={"x": {"script": "doc['bytes'].value * 2"}}))
    probe("runtime field (painless)", lambda: es.search(index=f"{P}-logs", size=1, runtime_mappings={"x": {"type": "long", "script": "emit(1)"}}, fields=["x"]))
    probe("update by script", lambda: es.update(index=f"{P}-logs", id="fixed-1", script={"source": "ctx._source.bytes += 1"}))
    probe("update with partial doc", lambda: es.update(index=f"{P}-logs", id="fixed-1", doc={"bytes": 7}))
    probe("ingest pipeline (set processor)", lambda: es.ingest.put_pipeline(id=f"{P}-pipe", processors=[{"set": {"field": "x", "value": 1}}]))
    probe("ingest pipeline (no processors)", lambda: es.ingest.put_pipeline(id=f"{P}-pipe0", processors=[]))
    probe("_reindex", lambda: es.reindex(source={"index": f"{P}-logs"}, dest={"index": f"{P}-copy"}, max_docs=10))
    probe("_update_by_query", lambda: es.update_by_query(index=f"{P}-logs", query={"term": {"host": "x"}}))
    probe("_delete_by_query", lambda: es.delete_by_query(index=f"{P}-logs", query={"term": {"host": "nope"}}))
    probe("delete by id", lambda: es.delete(index=f"{P}-logs", id="good-1"))
    probe("_mget", lambda: es.mget(index=f"{P}-logs", ids=["fixed-1"]))
    probe("_msearch", lambda: es.msearch(searches=[{"index": f"{P}-logs"}, {"query": {"match_all": {}}, "size": 0}]))
    probe("point in time", lambda: es.open_point_in_time(index=f"{P}-logs", keep_alive="1m"))
    probe("scroll (helpers.scan)", lambda: sum(1 for _ in helpers.scan(es, index=f"{P}-logs", query={"query": {"term": {"host": "db-1"}}}, size=1000)))
    probe("rollover", lambda: es.indices.rollover(alias=f"{P}-logs"))
    probe("_license", lambda: es.license.get())
    probe("_cat/indices", lambda: es.cat.indices(index=f"{P}-*", format="json"))
    probe("_field_caps", lambda: es.field_caps(index=f"{P}-logs", fields="*"))

    def data_stream():
        es.indices.put_index_template(
            name=f"{P}-ds",
            index_patterns=[f"{P}-ds-*"],
            data_stream={},
            composed_of=[f"{P}-mappings"],
            template={"settings": {"number_of_replicas": 0}},
            priority=501,
        )
        es.index(index=f"{P}-ds-a", document={"@timestamp": "2026-01-01T00:00:00Z", "host": "h"}, op_type="create")
        return es.indices.get_data_stream(name=f"{P}-ds-a")

    if args.data_streams:
        # Without the data-streams module a data stream can be created (by indexing) but not listed or deleted:
        # only use on a throwaway node (es.sh reset wipes it).
        probe("data stream (template + auto-create + GET _data_stream)", data_stream)
        probe("index into data stream (auto-create only)", lambda: es.index(index=f"{P}-ds-b", document={"@timestamp": "2026-01-01T00:00:00Z"}, op_type="create"))
        probe("search data stream", lambda: es.search(index=f"{P}-ds-*", size=0))
        probe("DELETE _data_stream", lambda: es.indices.delete_data_stream(name=f"{P}-ds-*"))
    probe("best_compression codec", lambda: (es.indices.create(index=f"{P}-bc", settings={"codec": "best_compression", "number_of_replicas": 0}), es.index(index=f"{P}-bc", document={"a": 1}, refresh=True))[1])
    probe("logsdb index mode", lambda: (es.indices.create(index=f"{P}-logsdb", settings={"mode": "logsdb", "number_of_replicas": 0}, mappings={"properties": {"@timestamp": {"type": "date"}, "host": {"properties": {"name": {"type": "keyword"}}}}}), es.index(index=f"{P}-logsdb", document={"@timestamp": "2026-01-01T00:00:00Z", "host": {"name": "a"}}, refresh=True))[1])
    for an in ["standard", "simple", "whitespace", "keyword", "stop", "english", "pattern"]:
        probe(f"analyzer {an}", lambda an=an: es.indices.analyze(analyzer=an, text="Hello World-42")["tokens"])
    for tok in ["standard", "keyword", "whitespace", "letter", "pattern", "ngram"]:
        probe(f"tokenizer {tok}", lambda tok=tok: es.indices.analyze(tokenizer=tok, text="Hello World-42")["tokens"])
    for flt in ["lowercase", "asciifolding", "trim", "uppercase"]:
        probe(f"token filter {flt}", lambda flt=flt: es.indices.analyze(tokenizer="standard", filter=[flt], text="Héllo")["tokens"])
    probe("custom normalizer [lowercase]", lambda: es.indices.create(index=f"{P}-norm", settings={"analysis": {"normalizer": {"n": {"type": "custom", "filter": ["lowercase"]}}}}, mappings={"properties": {"k": {"type": "keyword", "normalizer": "n"}}}))
    for ty in ["wildcard", "match_only_text", "scaled_float", "constant_keyword", "flattened", "unsigned_long", "version", "geo_point", "date_nanos", "dense_vector"]:
        extra = {"scaling_factor": 100} if ty == "scaled_float" else {}
        probe(f"field type {ty}", lambda ty=ty, extra=extra: es.indices.create(index=f"{P}-type-{ty}", mappings={"properties": {"f": {"type": ty, **extra}}}))

    # --- bulk rate ---------------------------------------------------------------------------------------------
    if args.bench:
        for chunk in (500, 2000):
            idx = f"{P}-bench-c{chunk}"
            es.indices.create(index=idx, settings={"number_of_replicas": 0, "number_of_shards": 1},
                              mappings=es.indices.get_mapping(index=f"{P}-logs-000001")[f"{P}-logs-000001"]["mappings"])
            t = time.perf_counter()
            ok, _ = helpers.bulk(es, docs(args.bench, idx), chunk_size=chunk)
            el = time.perf_counter() - t
            es.indices.refresh(index=idx)
            n = es.count(index=idx)["count"]
            check(f"bench: helpers.bulk {args.bench} docs, chunk_size={chunk}, 1 thread", ok == args.bench and n == args.bench,
                  f"{el:.1f}s = {args.bench / el:,.0f} docs/s")

    cleanup(es)
    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all core checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
