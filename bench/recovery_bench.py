#!/usr/bin/env python3
"""Recovery time of the durable state: snapshot checkpoints in Kafka vs rewinding to the oldest open session.

    python bench/recovery_bench.py [--corpus bench/.data/corpus.log] [--lines 400000] [--bootstrap 127.0.0.1:9092]

Feeds the first LINES lines of the corpus (all appliances, as one partition would see them) into a
stitcher, then measures, at that point:
  - snapshot: build + encode the state, its size, write it to a real Kafka state topic (chunks + marker),
    read it back with a fresh consumer, decode and restore it into a new stitcher;
  - the replay a restart needs after it: `checkpoint_interval` seconds of event time worth of lines (the
    snapshot design) vs everything since the oldest open session's first line (the rewind design),
    timed through the same parser and stitcher.
Without --bootstrap (or ESA_KAFKA_BOOTSTRAP) the Kafka round trip is skipped and only the in-process parts
are reported. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from enricher.cli import build_pipeline  # noqa: E402
from enricher.config import load  # noqa: E402
from enricher.core.sessions.state import encode_state
from enricher.edges.state.kafka import KafkaStateStore  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def timed(fn, *a):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = fn(*a)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(HERE, ".data", "corpus.log"))
    ap.add_argument("--lines", type=int, default=400_000)
    ap.add_argument("--checkpoint-interval", type=float, default=5.0, help="seconds of event time")
    ap.add_argument("--bootstrap", default=os.environ.get("ESA_KAFKA_BOOTSTRAP"))
    a = ap.parse_args(argv)
    if not os.path.exists(a.corpus):
        sys.exit(f"no corpus at {a.corpus}: python bench/gen_corpus.py --lines 1000000 --out {a.corpus}")
    cfg = load(None, {"time.reference_time": "2026-11-28T00:00:00Z"})
    lines = []
    with open(a.corpus, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= a.lines + 200_000:
                break
            lines.append(line)
    head = lines[: a.lines]
    pipe = build_pipeline(cfg)
    events = list(pipe.parser.parse_lines(head))
    for ev in events:
        pipe.stitcher.feed(ev)
    st = pipe.stitcher
    open_n = st.open_sessions()
    now_ts = max(st._watermark.values())
    oldest = min(s.first_ts for s in st._open.values())
    # Lines since the oldest open session began: what a rewind design must re-read.
    rewind_from = next(i for i, ev in enumerate(events) if ev.ts is not None and ev.ts >= oldest)
    rewind_lines = head[rewind_from:]
    ckpt_from = next(i for i, ev in enumerate(events) if ev.ts is not None and ev.ts >= now_ts - a.checkpoint_interval)
    ckpt_lines = head[ckpt_from:]

    snap, snap_wall, snap_cpu = timed(st.snapshot)
    blob, enc_wall, enc_cpu = timed(encode_state, snap)
    result: dict[str, object] = {
        "bench": "recovery",
        "lines_before_crash": a.lines,
        "open_sessions": open_n,
        "oldest_open_session_age_s": round(now_ts - oldest, 1),
        "snapshot_build_s": round(snap_wall, 4),
        "snapshot_encode_s": round(enc_wall, 4),
        "snapshot_bytes": len(blob),
    }

    def replay(chunk: list[str]) -> float:
        p = build_pipeline(cfg)
        t0 = time.process_time()
        for _ in p.process_lines(chunk):
            pass
        return time.process_time() - t0

    result["replay_since_checkpoint_lines"] = len(ckpt_lines)
    result["replay_since_checkpoint_cpu_s"] = round(replay(ckpt_lines), 3)
    result["rewind_to_oldest_open_lines"] = len(rewind_lines)
    result["rewind_to_oldest_open_cpu_s"] = round(replay(rewind_lines), 3)

    if a.bootstrap:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic

        topic = f"esa-recovery-bench-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=a.bootstrap)
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        producer = KafkaProducer(bootstrap_servers=a.bootstrap, acks="all", compression_type="gzip", max_request_size=8 << 20)
        store = KafkaStateStore(
            producer, lambda: KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False), topic
        )
        _, save_wall, _ = timed(store.save, "esa-mail-logs", 0, 1, 12345, snap)
        fresh = KafkaStateStore(
            producer, lambda: KafkaConsumer(bootstrap_servers=a.bootstrap, enable_auto_commit=False), topic
        )
        ckpt, load_wall, _ = timed(fresh.load, "esa-mail-logs", 0)
        restored = build_pipeline(cfg).stitcher
        _, restore_wall, _ = timed(restored.restore, ckpt.state)
        assert restored.open_sessions() == open_n, "restore lost sessions"
        result.update(
            kafka_save_s=round(save_wall, 3),
            kafka_load_s=round(load_wall, 3),
            restore_s=round(restore_wall, 3),
            recovery_snapshot_total_s=round(load_wall + restore_wall + result["replay_since_checkpoint_cpu_s"], 3),  # type: ignore[operator]
        )
        producer.close()
        admin.delete_topics([topic])
        admin.close()
    print(__import__("json").dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
