#!/usr/bin/env python3
"""End-to-end throughput Kafka → enricher → Elasticsearch, beside the direct-bulk ceiling, in one run.

    python bench/e2e_bench.py [--corpus bench/.data/corpus.log] [--consumers 1] [--partitions 4]
                              [--client kafka-python] [--client confluent] [--runs 1]

Needs the real services (`make services-up`; ESA_KAFKA_BOOTSTRAP / ESA_ES_URL, defaults 127.0.0.1).
1. Replays the corpus in-process to get the session documents (what the enricher will write).
2. Ceiling: bulk-indexes those documents straight into Elasticsearch with the Python client
   (`elasticsearch.helpers.bulk`, same templates, same ids, same monthly indices) — documents per second
   from the first request to the refreshed count.
3. Publishes the corpus to a fresh topic (`esa-enricher produce`; its rate is reported too), then starts
   N `esa-enricher run` processes in one consumer group and measures from their start until every session
   document is counted in Elasticsearch (polled without refreshing the index until its indexing count says
   they may all be in: like the ceiling, one refresh at the end) — documents (and lines) per second. Once per `--client`
   (`kafka.client`; default: both), each from its own topic and group, right after the run's ceiling.
Before the first run, one ceiling run is made and discarded: a node just started is slower (`--no-warmup`).
Prints a line per run and one JSON line with, per client, the ratio e2e / ceiling of the same run (the
machine may be shared: compare ratios, not absolute times).

The end of the input: sessions still open when the corpus ends would be written only after
`--exit-when-idle`, a fixed wait that is not throughput (with 20 s and a ~9.5 s ceiling no enricher could
score above 0.32). So the bench appends one line per appliance dated 2 h after the corpus's end
(`benchlib.closing_lines`, the way replay_bench.py closes syslog-ng's windows): every session is then written
by event time, the expected documents are those of the same input, and the clock stops when the last one
is counted. `--no-closing-lines` measures the raw corpus, idle wait included. Uses its own topics, groups
and index prefixes and deletes them afterwards. Medians of --runs runs (default 1: a run is long).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)


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


def indexed(es, alias: str) -> int:  # type: ignore[no-untyped-def]
    """Index operations the alias's primaries took so far: read without a refresh (a refresh every poll
    would make Elasticsearch cut a segment twice a second while it indexes, work the ceiling never does)."""
    from elasticsearch import NotFoundError

    try:
        stats = es.indices.stats(index=alias, metric="indexing")
    except NotFoundError:
        return 0
    return int(stats["_all"]["primaries"].get("indexing", {}).get("index_total", 0))  # {} before any index exists


def es_cpu_s(es) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds the Elasticsearch node(s) used so far (what it costs to index, beside our own CPU)."""
    nodes = es.nodes.stats(metric="process")["nodes"].values()
    return sum(n["process"]["cpu"]["total_in_millis"] for n in nodes) / 1000.0


def children_cpu_s() -> float:
    """CPU seconds of the child processes reaped so far (user + system)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def ceiling(es, docs: list[dict], prefix: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from elasticsearch import helpers

    from enricher.edges.sinks.elasticsearch import assets as es_assets
    from enricher.edges.sinks.elasticsearch.encoder import index_for

    es_assets.install(es, prefix=prefix)
    actions = ({"_index": index_for(prefix, d), "_id": d["event"]["id"], "_source": d} for d in docs)
    cpu0 = es_cpu_s(es)
    t0 = time.perf_counter()
    ok, errors = helpers.bulk(es, actions, chunk_size=2000, max_chunk_bytes=8 << 20, raise_on_error=False)
    n = count(es, prefix)
    wall = time.perf_counter() - t0
    if errors or n != len({d["event"]["id"] for d in docs}):
        raise SystemExit(f"ceiling run indexed {n} of {len(docs)} ({len(errors)} errors)")
    return wall, es_cpu_s(es) - cpu0


def e2e(corpus: str, expected: int, prefix: str, consumers: int, partitions: int, bootstrap: str, es_url: str, es, client: str, idle: float) -> dict:  # type: ignore[no-untyped-def]
    from enricher.config import KafkaSettings
    from enricher.edges.kafka.kafka_python import ensure_topics, make_admin
    from enricher.edges.sinks.elasticsearch import assets as es_assets

    tag = uuid.uuid4().hex[:8]
    topic = f"esa-e2e-{tag}"
    k = KafkaSettings(bootstrap_servers=bootstrap, topic=topic, state_topic=f"{topic}-state", dead_letter_topic=f"{topic}-dlq")
    ensure_topics(k, partitions)
    try:
        es_assets.install(es, prefix=prefix)
        env = dict(
            os.environ,
            ESA_KAFKA_BOOTSTRAP=bootstrap,
            ESA_ES_URL=es_url,
            ESA__KAFKA__TOPIC=topic,
            ESA__KAFKA__STATE_TOPIC=k.state_topic,
            ESA__KAFKA__DEAD_LETTER_TOPIC=k.dead_letter_topic,
            ESA__KAFKA__GROUP_ID=f"esa-e2e-{tag}",
            ESA__KAFKA__CLIENT=client,
            ESA__ELASTICSEARCH__INDEX_PREFIX=prefix,
            ESA__TIME__REFERENCE_TIME='"2026-11-28T00:00:00Z"',
            ESA__SERVICE__METRICS_PORT="0",
        )
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "enricher", "produce", corpus], env=env, check=True, capture_output=True)
        produce_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            logs = [open(os.path.join(tmp, f"run{i}.log"), "wb") for i in range(consumers)]  # noqa: SIM115 - closed below
            cpu0, es_cpu0 = children_cpu_s(), es_cpu_s(es)
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen([sys.executable, "-m", "enricher", "run", "--exit-when-idle", str(idle)], env=env, stderr=logs[i])
                for i in range(consumers)
            ]
            n = 0
            try:
                while n < expected:
                    time.sleep(0.1)
                    exited = all(p.poll() is not None for p in procs)
                    # Refreshed and counted once every document may be in (or the runs ended), as in the ceiling.
                    if exited or indexed(es, prefix) >= expected:
                        n = count(es, prefix)
                    if exited and n < expected:
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
            # Until the runs exit (the idle wait included; they use next to no CPU meanwhile).
            cpu, es_cpu = children_cpu_s() - cpu0, es_cpu_s(es) - es_cpu0
            if n != expected:
                with open(os.path.join(tmp, "run0.log"), encoding="utf-8", errors="replace") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"e2e run wrote {n} of {expected} documents\n{tail}")
        return {"produce_s": produce_s, "e2e_s": wall, "enricher_cpu_s": cpu, "es_cpu_s": es_cpu, "topic": topic}
    finally:  # 1M-line topics add up: leave nothing behind
        admin = make_admin(k)
        try:
            admin.delete_topics([k.topic, k.state_topic, k.dead_letter_topic])
        finally:
            admin.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(HERE, ".data", "corpus.log"))
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument(
        "--idle", type=float, default=20.0,
        help="--exit-when-idle of the runs (default 20); in the measured time only with --no-closing-lines",
    )
    ap.add_argument("--client", action="append", choices=["kafka-python", "confluent"], help="repeatable; default: both")
    ap.add_argument("--no-closing-lines", action="store_true", help="do not append the closing lines (see above)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the discarded ceiling run that warms Elasticsearch up")
    a = ap.parse_args(argv)
    clients = a.client or ["kafka-python", "confluent"]
    from elasticsearch import Elasticsearch

    bootstrap = os.environ.get("ESA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    es_url = os.environ.get("ESA_ES_URL", "http://127.0.0.1:9200")
    if not os.path.exists(a.corpus):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_corpus.py"), "--lines", "1000000", "--out", a.corpus], check=True)
    from elasticsearch.serializer import OrjsonSerializer

    # The ceiling's client is set up like the enricher's (orjson): the ratio compares the pipelines, not serialisers.
    es = Elasticsearch(es_url, request_timeout=120, serializer=OrjsonSerializer())
    tmpdir = tempfile.TemporaryDirectory(prefix="esa-e2e-")
    if not a.no_closing_lines:
        import benchlib

        closed = os.path.join(tmpdir.name, "corpus-closed.log")
        with open(a.corpus, "rb") as src, open(closed, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.write(benchlib.closing_lines(a.corpus))
        a.corpus = closed
    docs = documents(a.corpus)
    expected = len({d["event"]["id"] for d in docs})
    with open(a.corpus, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    if not a.no_warmup:
        # A node just started indexes its first documents several times slower (JIT, caches): a cold ceiling
        # once showed as a ratio of 0.76. One discarded ceiling run first.
        warm_prefix = f"esa-bench-warm-{uuid.uuid4().hex[:6]}"
        try:
            w_s, _ = ceiling(es, docs, warm_prefix)
            print(f"warm-up: {expected / w_s:,.0f} docs/s ({w_s:.1f} s, discarded)", file=sys.stderr)
        finally:
            es.options(ignore_status=404).indices.delete(index=f"{warm_prefix}-*")
    rows = []
    for run in range(a.runs):
        tag = uuid.uuid4().hex[:6]
        ceil_prefix = f"esa-bench-ceil-{tag}"
        prefixes = {c: f"esa-bench-e2e-{tag}-{c}" for c in clients}
        try:
            c_s, c_cpu = ceiling(es, docs, ceil_prefix)
            row: dict = {"ceiling_s": c_s, "ceiling_es_cpu_s": c_cpu}
            for c in clients:
                row[c] = e2e(a.corpus, expected, prefixes[c], a.consumers, a.partitions, bootstrap, es_url, es, c, a.idle)
        finally:
            for p in (ceil_prefix, *prefixes.values()):
                es.options(ignore_status=404).indices.delete(index=f"{p}-*")
        rows.append(row)
        c_s = row["ceiling_s"]
        print(f"run {run + 1}: ceiling {expected / c_s:,.0f} docs/s ({c_s:.1f} s, Elasticsearch CPU {c_cpu:.1f} s)", file=sys.stderr)
        for c in clients:
            r = row[c]
            print(f"  {c}: e2e {expected / r['e2e_s']:,.0f} docs/s ({r['e2e_s']:.1f} s, {lines / r['e2e_s']:,.0f} lines/s), "
                  f"ratio {c_s / r['e2e_s']:.3f}, "
                  f"CPU enricher {r['enricher_cpu_s']:.1f} s + Elasticsearch {r['es_cpu_s']:.1f} s, "
                  f"produce {lines / r['produce_s']:,.0f} lines/s", file=sys.stderr)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    out = {
        "bench": "e2e_vs_direct_bulk",
        "lines": lines,
        "documents": expected,
        "consumers": a.consumers,
        "partitions": a.partitions,
        "idle_s": a.idle,
        "ceiling_docs_per_s": round(expected / median([r["ceiling_s"] for r in rows])),
        "clients": {
            c: {
                "e2e_docs_per_s": round(expected / median([r[c]["e2e_s"] for r in rows])),
                "e2e_lines_per_s": round(lines / median([r[c]["e2e_s"] for r in rows])),
                "produce_lines_per_s": round(lines / median([r[c]["produce_s"] for r in rows])),
                # Per run against that run's own ceiling, then the median: the machine may be shared.
                "ratio_e2e_over_ceiling": round(median([r["ceiling_s"] / r[c]["e2e_s"] for r in rows]), 3),
            }
            for c in clients
        },
        "closing_lines": not a.no_closing_lines,
        "runs": rows,
    }
    if a.no_closing_lines:
        for c in clients:  # the same without the --idle wait before the last sessions are written
            out["clients"][c]["ratio_without_idle_wait"] = round(median([r["ceiling_s"] / (r[c]["e2e_s"] - a.idle) for r in rows]), 3)
    tmpdir.cleanup()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
