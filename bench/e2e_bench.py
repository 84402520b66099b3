#!/usr/bin/env python3
"""End-to-end throughput Kafka → enricher → Elasticsearch, beside the direct-bulk ceiling, in one run.

    python bench/e2e_bench.py [--corpus bench/.data/corpus.log] [--consumers 1] [--partitions 4]

Needs the real services (`make services-up`; ESA_KAFKA_BOOTSTRAP / ESA_ES_URL, defaults 127.0.0.1).
1. Replays the corpus in-process to get the session documents (what the enricher will write).
2. Ceiling: bulk-indexes those documents straight into Elasticsearch with the Python client
   (`elasticsearch.helpers.bulk`, same templates, same ids, same monthly indices) — documents per second
   from the first request to the refreshed count.
3. Publishes the corpus to a fresh topic (`esa-enricher produce`; its rate is reported too), then starts
   N `esa-enricher run` processes in one consumer group and measures from their start until every session
   document is counted in Elasticsearch — documents (and lines) per second.
Prints a table and one JSON line with the ratio e2e / ceiling. Uses its own topic, group and index prefix
and deletes them afterwards. Medians of --runs runs (default 1: a run is long).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def documents(corpus: str) -> list[dict]:
    from enricher.cli import build_pipeline
    from enricher.config import load

    pipe = build_pipeline(load(None, {"time.reference_time": "2026-11-28T00:00:00Z"}))
    with open(corpus, encoding="utf-8") as f:
        docs = [*pipe.process_lines(f), *pipe.flush()]
    return [d for d in docs if (d.get("event") or {}).get("kind") != "pipeline_error"]


def count(es, alias: str) -> int:  # type: ignore[no-untyped-def]
    from elasticsearch import NotFoundError

    try:
        es.indices.refresh(index=alias)
        return int(es.count(index=alias)["count"])
    except NotFoundError:  # no document written yet: the alias has no index
        return 0


def ceiling(es, docs: list[dict], prefix: str) -> float:  # type: ignore[no-untyped-def]
    from elasticsearch import helpers

    from enricher.sinks import es_assets
    from enricher.sinks.elasticsearch import index_for

    es_assets.install(es, prefix=prefix)
    actions = ({"_index": index_for(prefix, d), "_id": d["event"]["id"], "_source": d} for d in docs)
    t0 = time.perf_counter()
    ok, errors = helpers.bulk(es, actions, chunk_size=2000, max_chunk_bytes=8 << 20, raise_on_error=False)
    n = count(es, prefix)
    wall = time.perf_counter() - t0
    if errors or n != len({d["event"]["id"] for d in docs}):
        raise SystemExit(f"ceiling run indexed {n} of {len(docs)} ({len(errors)} errors)")
    return wall


def e2e(corpus: str, expected: int, prefix: str, consumers: int, partitions: int, bootstrap: str, es_url: str, es) -> dict:  # type: ignore[no-untyped-def]
    from enricher.config import KafkaSettings
    from enricher.sinks import es_assets
    from enricher.sources.kafka import ensure_topics

    tag = uuid.uuid4().hex[:8]
    topic = f"esa-e2e-{tag}"
    k = KafkaSettings(bootstrap_servers=bootstrap, topic=topic, state_topic=f"{topic}-state", dead_letter_topic=f"{topic}-dlq")
    ensure_topics(k, partitions)
    es_assets.install(es, prefix=prefix)
    env = dict(
        os.environ,
        ESA_KAFKA_BOOTSTRAP=bootstrap,
        ESA_ES_URL=es_url,
        ESA__KAFKA__TOPIC=topic,
        ESA__KAFKA__STATE_TOPIC=k.state_topic,
        ESA__KAFKA__DEAD_LETTER_TOPIC=k.dead_letter_topic,
        ESA__KAFKA__GROUP_ID=f"esa-e2e-{tag}",
        ESA__ELASTICSEARCH__INDEX_PREFIX=prefix,
        ESA__TIME__REFERENCE_TIME='"2026-11-28T00:00:00Z"',
        ESA__SERVICE__METRICS_PORT="0",
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "enricher", "produce", corpus], env=env, check=True, capture_output=True)
    produce_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        logs = [open(os.path.join(tmp, f"run{i}.log"), "wb") for i in range(consumers)]  # noqa: SIM115 - closed below
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen([sys.executable, "-m", "enricher", "run", "--exit-when-idle", "20"], env=env, stderr=logs[i])
            for i in range(consumers)
        ]
        n = 0
        try:
            while n < expected:
                time.sleep(0.5)
                n = count(es, prefix)
                if all(p.poll() is not None for p in procs) and n < expected:
                    break
            wall = time.perf_counter() - t0
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=120)
            for f in logs:
                f.close()
        if n != expected:
            with open(os.path.join(tmp, "run0.log"), encoding="utf-8", errors="replace") as f:
                tail = f.read()[-2000:]
            raise SystemExit(f"e2e run wrote {n} of {expected} documents\n{tail}")
    return {"produce_s": produce_s, "e2e_s": wall, "topic": topic}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(HERE, ".data", "corpus.log"))
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args(argv)
    from elasticsearch import Elasticsearch

    bootstrap = os.environ.get("ESA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    es_url = os.environ.get("ESA_ES_URL", "http://127.0.0.1:9200")
    if not os.path.exists(a.corpus):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_corpus.py"), "--lines", "1000000", "--out", a.corpus], check=True)
    es = Elasticsearch(es_url, request_timeout=120)
    docs = documents(a.corpus)
    expected = len({d["event"]["id"] for d in docs})
    with open(a.corpus, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    rows = []
    for run in range(a.runs):
        tag = uuid.uuid4().hex[:6]
        ceil_prefix, e2e_prefix = f"esa-bench-ceil-{tag}", f"esa-bench-e2e-{tag}"
        try:
            c = ceiling(es, docs, ceil_prefix)
            r = e2e(a.corpus, expected, e2e_prefix, a.consumers, a.partitions, bootstrap, es_url, es)
        finally:
            for p in (ceil_prefix, e2e_prefix):
                es.options(ignore_status=404).indices.delete(index=f"{p}-*")
        rows.append({"ceiling_s": c, **r})
        print(f"run {run + 1}: ceiling {expected / c:,.0f} docs/s ({c:.1f} s), e2e {expected / r['e2e_s']:,.0f} docs/s "
              f"({r['e2e_s']:.1f} s, {lines / r['e2e_s']:,.0f} lines/s), produce {lines / r['produce_s']:,.0f} lines/s", file=sys.stderr)
    rows.sort(key=lambda r: r["e2e_s"] / r["ceiling_s"])
    mid = rows[len(rows) // 2]
    out = {
        "bench": "e2e_vs_direct_bulk",
        "lines": lines,
        "documents": expected,
        "consumers": a.consumers,
        "partitions": a.partitions,
        "ceiling_docs_per_s": round(expected / mid["ceiling_s"]),
        "e2e_docs_per_s": round(expected / mid["e2e_s"]),
        "e2e_lines_per_s": round(lines / mid["e2e_s"]),
        "produce_lines_per_s": round(lines / mid["produce_s"]),
        "ratio_e2e_over_ceiling": round(mid["ceiling_s"] / mid["e2e_s"], 3),
        "runs": rows,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
