"""The streaming service: Kafka consumer group → per-partition pipelines → Elasticsearch, with checkpoints.

Guarantees (docs/decisions/durable-state.md):
- One pipeline (parser + stitcher) per assigned partition: all lines of an appliance share a partition, so
  a partition's state moves whole on a rebalance.
- A checkpoint flushes the sink (every document emitted so far is indexed or dead-lettered), writes each
  partition's state snapshot with the next offset to read, then commits that offset. Restore loads the
  snapshot and seeks to its offset; documents emitted after it are emitted again under the same ids
  (overwrite, no duplicates).
- While Elasticsearch refuses writes the partitions are paused and the consumer keeps polling (stays in
  the group); nothing is dropped and nothing more is read.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from enricher.config import Config
from enricher.pipeline import Pipeline
from enricher.sessions.snapshots import SnapshotStore
from enricher.sinks.elasticsearch import ElasticsearchSink
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")

_TICK_SECONDS = 1.0


@dataclass
class PartitionWork:
    """One assigned partition: its pipeline and how far it got."""

    tp: Any
    pipeline: Pipeline
    next_offset: int | None = None
    checkpoint_no: int = 0
    dirty: bool = False
    seen_unrecognized: int = 0
    closing_offsets: dict[str, int] = field(default_factory=dict)


class Service:
    """Runs the consume → stitch → index loop until stopped (or idle, for batch use)."""

    def __init__(
        self,
        cfg: Config,
        consumer: Any,
        producer: Any,
        es_client: Any,
        snapshots: SnapshotStore,
        build_pipeline: Any,
        metrics: Metrics | None = None,
    ) -> None:
        self.cfg = cfg
        self.consumer = consumer
        self.producer = producer
        self.snapshots = snapshots
        self.build_pipeline = build_pipeline
        self.metrics = metrics or Metrics()
        self.topic = cfg.kafka.topic
        es = cfg.elasticsearch
        self.sink = ElasticsearchSink(
            es_client,
            es.index_prefix,
            self._dead_letter,
            self.metrics,
            max_docs=es.bulk_max_docs,
            max_bytes=es.bulk_max_bytes,
            max_backoff=es.max_backoff_seconds,
            should_stop=lambda: self._stop_now,
        )
        self.parts: dict[Any, PartitionWork] = {}
        self._stop = False
        self._stop_now = False
        self._flushing = False
        self._paused = False
        self._last_flush = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self._healthy = (True, "starting")

    # -- lifecycle ----------------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        """Stop after the current batch (SIGTERM/SIGINT): flush, checkpoint, commit."""
        if self._stop:
            self._stop_now = True  # a second signal: stop retrying the sink
        self._stop = True

    def health(self) -> tuple[bool, str]:
        """(ok, reason) for /healthz."""
        return self._healthy

    def run(self, exit_when_idle: float | None = None) -> int:
        """The main loop; returns the process exit code."""
        from kafka import ConsumerRebalanceListener

        service = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                service._revoke(list(revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                service._assign(list(assigned))

        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.consumer.subscribe([self.topic], listener=Listener())
        last_data = time.monotonic()
        last_tick = 0.0
        self._healthy = (True, "running")
        try:
            while not self._stop:
                batch = self.consumer.poll(timeout_ms=200, max_records=self.cfg.kafka.max_poll_records)
                now_mono = time.monotonic()
                now = time.time()
                if batch:
                    last_data = now_mono
                    self._process(batch, now)
                if now_mono - last_tick >= _TICK_SECONDS:
                    last_tick = now_mono
                    for w in list(self.parts.values()):
                        self._emit_all(w, w.pipeline.tick(now), None)
                    self._update_lag()
                if self.sink.full() or (
                    self.sink.pending() and now_mono - self._last_flush >= self.cfg.elasticsearch.flush_interval_seconds
                ):
                    self._flush()
                if now_mono - self._last_checkpoint >= self.cfg.service.checkpoint_interval_seconds:
                    self.checkpoint(list(self.parts.values()))
                if exit_when_idle is not None and now_mono - last_data >= exit_when_idle and self.parts:
                    log.info("idle for %.0f s: writing open sessions and exiting", exit_when_idle)
                    for w in list(self.parts.values()):
                        self._emit_all(w, w.pipeline.drain(), None)
                    break
            self.checkpoint(list(self.parts.values()))
        except InterruptedError:
            log.warning("stopped with documents not yet written; they are re-read from the last checkpoint")
            return 1
        finally:
            self._healthy = (False, "stopped")
            self.producer.flush()
            self.consumer.close(autocommit=False)
        return 0

    # -- partitions ---------------------------------------------------------------------------------------
    def _assign(self, tps: list[Any]) -> None:
        for tp in tps:
            if tp in self.parts:
                continue
            w = PartitionWork(tp, self.build_pipeline())
            ckpt = self.snapshots.load(tp.topic, tp.partition)
            if ckpt is not None:
                w.pipeline.stitcher.restore(ckpt.state)
                w.checkpoint_no = ckpt.number
                w.next_offset = ckpt.offset
                w.seen_unrecognized = w.pipeline.stitcher.stats.unrecognized
                self.consumer.seek(tp, ckpt.offset)
                self.metrics.restores.inc()
                log.info("partition %s: restored checkpoint %d at offset %d", tp.partition, ckpt.number, ckpt.offset)
            self.parts[tp] = w
        self._set_open_gauge()

    def _revoke(self, tps: list[Any]) -> None:
        leaving = [self.parts[tp] for tp in tps if tp in self.parts]
        if leaving and not self._flushing:
            try:
                self.checkpoint(leaving, rebalancing=True)
            except Exception:  # the next owner restores the previous checkpoint: nothing is lost
                log.exception("checkpoint on revoke failed; the new owner re-reads from the previous one")
        for tp in tps:
            self.parts.pop(tp, None)
        self._set_open_gauge()

    # -- processing ---------------------------------------------------------------------------------------
    def _process(self, batch: dict[Any, list[Any]], now: float) -> None:
        n = 0
        for tp, records in batch.items():
            w = self.parts.get(tp)
            if w is None:
                continue
            pipe = w.pipeline
            for r in records:
                text = r.value.decode("utf-8", "replace") if r.value is not None else ""
                key = r.key.decode("utf-8", "replace") if r.key else None
                docs = list(pipe.process_record(text, key, now))
                if docs:
                    self._emit_all(w, docs, r.offset)
                w.next_offset = r.offset + 1
            n += len(records)
            w.dirty = True
            unrec = pipe.stitcher.stats.unrecognized
            if unrec != w.seen_unrecognized:
                self.metrics.unparsed.labels(reason="unknown_shape_in_session").inc(unrec - w.seen_unrecognized)
                w.seen_unrecognized = unrec
        self.metrics.lines_in.inc(n)
        self._set_open_gauge()

    def _emit_all(self, w: PartitionWork, docs: Any, offset: int | None) -> None:
        src = [{"topic": w.tp.topic, "partition": w.tp.partition, "offset": offset}] if offset is not None else []
        for doc in docs:
            event = doc.get("event") or {}
            if event.get("kind") == "pipeline_error":
                reason = (doc.get("error") or {}).get("code", "unknown_shape")
                self.metrics.unparsed.labels(reason=reason).inc()
                self._dead_letter(doc, {"type": "unparsed", "reason": reason}, src)
                continue
            state = (doc.get("esa") or {}).get("session", {}).get("state", "")
            self.metrics.sessions_closed.labels(state=state).inc()
            if doc.get("abort_reason"):
                self.metrics.aborts.labels(reason=doc["abort_reason"], layer=doc.get("abort_layer", "")).inc()
            self.sink.add(doc, src)

    def _dead_letter(self, doc: dict[str, Any], error: dict[str, Any], sources: list[Any]) -> None:
        value = orjson.dumps({"document": doc, "error": error, "sources": sources})
        key = ((doc.get("event") or {}).get("id") or "").encode() or None
        self.producer.send(self.cfg.kafka.dead_letter_topic, key=key, value=value)

    # -- flushing and checkpoints -------------------------------------------------------------------------
    def _keep_alive(self) -> None:
        """While the sink waits for Elasticsearch: pause, keep polling so the group keeps us."""
        if self._flushing and not self._paused:
            assignment = list(self.consumer.assignment())
            if assignment:
                self.consumer.pause(*assignment)
            self._paused = True
            self._healthy = (False, "elasticsearch unavailable: partitions paused, retrying")
            log.warning("Elasticsearch refuses writes: consumer paused, retrying with backoff")
        t0 = time.monotonic()
        got = self.consumer.poll(timeout_ms=0)
        for tp, records in (got or {}).items():
            # Records of a partition assigned during the wait: not processed now, so read them again later.
            if records:
                self.consumer.seek(tp, records[0].offset)
        self.metrics.backpressure_seconds.inc(time.monotonic() - t0)

    def _flush(self) -> None:
        self._flushing = True
        t0 = time.monotonic()
        try:
            self.sink.flush(self._keep_alive)
        finally:
            self._flushing = False
            if self._paused:
                self.metrics.backpressure_seconds.inc(time.monotonic() - t0)
                self.consumer.resume(*list(self.consumer.assignment()))
                self._paused = False
                self._healthy = (True, "running")
                log.info("Elasticsearch accepts writes again: consumer resumed")
            self._last_flush = time.monotonic()

    def checkpoint(self, works: list[PartitionWork], rebalancing: bool = False) -> None:
        """Flush, snapshot each dirty partition, commit its offset."""
        from kafka.structs import OffsetAndMetadata

        t0 = time.monotonic()
        if rebalancing:
            self.sink.flush(None)  # no polling from inside a rebalance callback
        else:
            self._flush()
        self.producer.flush()
        offsets = {}
        for w in works:
            if not w.dirty or w.next_offset is None:
                continue
            w.checkpoint_no += 1
            state = w.pipeline.stitcher.snapshot()
            self.snapshots.save(w.tp.topic, w.tp.partition, w.checkpoint_no, w.next_offset, state)
            offsets[w.tp] = OffsetAndMetadata(w.next_offset, "", -1)
            w.dirty = False
        if offsets:
            self.consumer.commit(offsets)
            self.metrics.checkpoints.inc()
        self._last_checkpoint = time.monotonic()
        self.metrics.checkpoint_seconds.observe(self._last_checkpoint - t0)

    def _set_open_gauge(self) -> None:
        self.metrics.sessions_open.set(sum(w.pipeline.stitcher.open_sessions() for w in self.parts.values()))

    def _update_lag(self) -> None:
        for tp, w in self.parts.items():
            hw = self.consumer.highwater(tp)
            if hw is not None and w.next_offset is not None:
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(0, hw - w.next_offset))
