#!/usr/bin/env python3
"""Per-record cost of the consumer clients, as the service drives them (poll → {tp: [records]} → .key/.value).

    python bench/consumer_bench.py [--records 300000] [--runs 3]

Needs a real Kafka (ESA_KAFKA_BOOTSTRAP, default 127.0.0.1:9092). Publishes the corpus' first N records to a
fresh topic once (as `esa-enricher produce` does), then for each client (`kafka.client` = kafka-python,
confluent) joins a fresh group and reads them all, touching each record's offset, key and value. Reports, per record, the CPU time of the calling thread
(what competes with our processing for the GIL) and of the whole process (librdkafka's own threads included),
medians of --runs. Deletes its topic afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

from kafka import ConsumerRebalanceListener

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))



def publish(k, corpus: str, n: int) -> int:  # type: ignore[no-untyped-def]
    """The first n records of the corpus, keyed by appliance as `esa-enricher produce` does; returns how many."""
    import itertools

    from enricher.cli import build_pipeline
    from enricher.config import load
    from enricher.edges.kafka.kafka_python import produce_records, records_from_lines

    parser = build_pipeline(load(None)).parser
    with open(corpus, encoding="utf-8") as f:
        return int(produce_records(k, k.topic, itertools.islice(records_from_lines(parser, f), n))["records"])


def consume(k, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from enricher.edges.kafka import make_consumer

    c = make_consumer(k, 10_000)
    c.subscribe([k.topic], listener=_Listener())
    got = 0
    t_wall = t_thread = t_proc = 0.0
    sink = 0
    try:
        while got < n:
            w0, th0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
            batch = c.poll(timeout_ms=200, max_records=k.max_poll_records)
            for records in batch.values():
                for r in records:
                    sink += r.offset + len(r.value) + len(r.key)
                got += len(records)
            if got:  # from the first record on: joining the group is not per-record cost
                t_wall += time.perf_counter() - w0
                t_thread += time.thread_time() - th0
                t_proc += time.process_time() - p0
    finally:
        c.close(autocommit=False)
    return {"records": got, "thread_us": t_thread / got * 1e6, "process_us": t_proc / got * 1e6, "wall_us": t_wall / got * 1e6}


class _Listener(ConsumerRebalanceListener):  # kafka-python checks the listener's type
    def on_partitions_revoked(self, revoked):  # type: ignore[no-untyped-def]
        pass

    def on_partitions_assigned(self, assigned):  # type: ignore[no-untyped-def]
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(HERE, ".data", "corpus.log"), help="bench/gen_corpus.py output")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--client", action="append", choices=["kafka-python", "confluent"], help="default: both")
    a = ap.parse_args(argv)
    from enricher.config import KafkaSettings
    from enricher.edges.kafka.kafka_python import ensure_topics, make_admin

    tag = uuid.uuid4().hex[:8]
    base = KafkaSettings(
        bootstrap_servers=os.environ.get("ESA_KAFKA_BOOTSTRAP", "127.0.0.1:9092"), topic=f"esa-cbench-{tag}",
        state_topic=f"esa-cbench-{tag}-state", dead_letter_topic=f"esa-cbench-{tag}-dlq",
    )
    ensure_topics(base, 4)
    out: dict[str, dict[str, float]] = {}
    try:
        n = publish(base, a.corpus, a.records)
        for client in a.client or ["kafka-python", "confluent"]:
            runs = []
            for i in range(a.runs):
                k = base.model_copy(update={"client": client, "group_id": f"esa-cbench-{tag}-{client}-{i}"})
                runs.append(consume(k, n))
            out[client] = {m: round(statistics.median(r[m] for r in runs), 2) for m in ("thread_us", "process_us", "wall_us")}
            print(f"{client}: {out[client]} per record (median of {a.runs})", file=sys.stderr)
    finally:
        admin = make_admin(base)
        admin.delete_topics([base.topic, base.state_topic, base.dead_letter_topic])
        admin.close()
    print(json.dumps({"bench": "consumer_per_record", "records": n, **out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
