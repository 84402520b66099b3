"""The streaming service: Kafka consumer group → per-partition pipelines → Elasticsearch and/or the sessions
topic (`service.outputs`), with checkpoints (docs/decisions/durable-state.md).

The parts: `rebalance` (the assigned partitions, their pipelines and restores), `checkpoint` (flush, snapshot,
commit), `dead_letters` (the dead-letter topic), `health` (/healthz and the metrics), `shutdown` (bounded stop),
`wiring` (the real clients from the config); this module runs the loop.
- Bulk requests overlap processing: the sink sends one batch at a time on a background thread and the main
  loop settles it (retries, dead letters) before sending the next.
- While Elasticsearch (or the sessions topic) refuses writes the partitions are paused and the consumer keeps
  polling (stays in the group); nothing is dropped and nothing more is read. /healthz answers 503 meanwhile.
- A record whose processing raises goes to the dead-letter topic (`error.type` "processing_error", with the
  exception and the record's topic/partition/offset; `esa_processing_errors`) and the partition goes on; with
  `service.on_processing_error = "stop"` the service stops instead (ProcessingError), committing nothing past
  the previous checkpoint, so a restart reads the record again.
- An unparsed record is a dead letter too, kept as it came in `document.event.original` (the parser's copy
  joins inner newlines and is cut at 64 KiB); one that is not valid UTF-8 also keeps its exact bytes in
  `error.original_base64`.
- Shutdown is bounded (shutdown.py): on SIGTERM/SIGINT the loop stops reading, flushes and checkpoints for at
  most `service.shutdown_timeout_seconds`; a second signal exits at once.
- `--exit-when-idle`: idleness is the time spent in polls that came back empty, not wall time.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import orjson

from enricher.config import Config
from enricher.core.pipeline import Pipeline
from enricher.edges.ports import StateStore
from enricher.edges.sinks.elasticsearch import ElasticsearchSink
from enricher.edges.sinks.fanout import Fanout
from enricher.edges.sinks.kafka_topic import KafkaTopicSink
from enricher.errors import EnricherError, ProcessingError, ServiceError
from enricher.service.checkpoint import Checkpointer
from enricher.service.dead_letters import DeadLetters
from enricher.service.health import Health, Reporter
from enricher.service.rebalance import Partitions, PartitionWork
from enricher.service.shutdown import EXIT_STOPPED_UNSAFE, Shutdown
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")

_TICK_SECONDS = 1.0


class Service:
    """Runs the consume → stitch → index loop until stopped (or idle, for batch use)."""

    def __init__(
        self,
        cfg: Config,
        consumer: Any,
        producer: Any,
        es_client: Any,
        snapshots: StateStore,
        build_pipeline: Callable[[], Pipeline],
        metrics: Metrics | None = None,
        sessions_producer: Any = None,
        sink: Any = None,
        exit_now: Callable[[int], Any] = os._exit,
    ) -> None:
        self.cfg = cfg
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics or Metrics()
        self.topic = cfg.kafka.topic
        self.dead_letters = DeadLetters(producer, cfg.kafka.dead_letter_topic)
        # One sink is driven directly (the hot path pays no dispatch); several through a fan-out.
        self.sink: Any = sink if sink is not None else self._make_sink(cfg, es_client, sessions_producer)
        self.health_state = Health(cfg)
        self.reporter = Reporter(self.metrics)
        group = cfg.kafka.group_id
        self.partitions = Partitions(
            group, consumer, snapshots, build_pipeline, self.sink, self.metrics, self._set_open_gauge
        )
        self.partitions.checkpoint_leaving = self._checkpoint_leaving
        self.checkpointer = Checkpointer(
            group, consumer, producer, snapshots, self.sink, self.dead_letters, self.metrics, self._flush
        )
        self.shutdown = Shutdown(cfg.service.shutdown_timeout_seconds, exit_now)
        self._abandoned = False  # stopping without a last checkpoint: nothing more may be committed
        self._flushing = False
        self._paused = False
        self._last_flush = time.monotonic()

    def _make_sink(self, cfg: Config, es_client: Any, sessions_producer: Any) -> Any:
        es = cfg.elasticsearch
        sinks: list[Any] = []
        if "elasticsearch" in cfg.service.outputs:
            sinks.append(
                ElasticsearchSink(
                    es_client,
                    es.index_prefix,
                    self.dead_letters.send,
                    self.metrics,
                    max_docs=es.bulk_max_docs,
                    max_bytes=es.bulk_max_bytes,
                    max_backoff=es.max_backoff_seconds,
                    should_stop=self.stopping_now,
                )
            )
        if "kafka" in cfg.service.outputs:
            sinks.append(
                KafkaTopicSink(
                    sessions_producer,
                    cfg.kafka.sessions_topic,
                    self.dead_letters.send,
                    cfg.kafka.sessions_max_bytes,
                    self.metrics,
                    should_stop=self.stopping_now,
                )
            )
        return sinks[0] if len(sinks) == 1 else Fanout(sinks)

    @property
    def parts(self) -> dict[Any, PartitionWork]:
        """The assigned partitions' work, by TopicPartition."""
        return self.partitions.parts

    # -- lifecycle ----------------------------------------------------------------------------------------
    def request_stop(self, signum: int = signal.SIGTERM, *_: Any) -> None:
        """SIGTERM/SIGINT: stop reading, flush and checkpoint within `service.shutdown_timeout_seconds`; a
        second signal exits at once (see shutdown.Shutdown)."""
        self.shutdown.request(signum)

    def stopping_now(self) -> bool:
        """True when a stop must not wait for the sinks any more (a second signal, or the deadline passed)."""
        return self.shutdown.now()

    def health(self) -> tuple[bool, str]:
        """(ok, reason) for /healthz."""
        return self.health_state.state

    def summary(self) -> dict[str, Any]:
        """Records read by this process and where each went (see Reporter.summary)."""
        return self.reporter.summary()

    @property
    def lines_read(self) -> int:
        """Records read by this process."""
        return self.reporter.lines_read

    def run(self, exit_when_idle: float | None = None) -> int:
        """The main loop; returns the process exit code (a ServiceError when going on could lose data)."""
        from kafka import ConsumerRebalanceListener

        partitions = self.partitions

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python has no type information
            def on_partitions_revoked(self, revoked: Any) -> None:
                partitions.revoke(list(revoked))

            def on_partitions_assigned(self, assigned: Any) -> None:
                partitions.assign(list(assigned))

        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.consumer.subscribe([self.topic], listener=Listener())
        self.health_state.running()
        try:
            self._loop(exit_when_idle)
            self.checkpoint(partitions.restored())
        except InterruptedError:
            self._abandoned = True
            log.warning("stopped with documents not yet written; they are re-read from the last checkpoint")
            return EXIT_STOPPED_UNSAFE
        except EnricherError:
            self._abandoned = True
            raise
        except Exception as exc:  # a sink's refusal that retrying cannot fix, or a bug: stop, commit nothing more
            self._abandoned = True
            raise ServiceError(
                f"stopped on an error that retrying cannot fix: {type(exc).__name__}: {exc} "
                "(nothing past the last checkpoint was committed: a restart resumes from it)"
            ) from exc
        finally:
            self.health_state.stopped()
            log.info("summary %s", orjson.dumps(self.summary()).decode())
            try:
                self.producer.flush()
                # Closing revokes the partitions (kafka-python 3, librdkafka): the listener's checkpoint settles a
                # batch still in flight before anything is committed. Only then may the sink drop one.
                self.consumer.close(autocommit=False)
            finally:
                self.sink.close()
                self.shutdown.done()
        return 0

    def _loop(self, exit_when_idle: float | None) -> None:
        partitions = self.partitions
        # Idleness is the time spent in polls that came back empty since the last record or restore: not wall
        # time, which also runs while the loop waits for the sinks (a slow bulk request, back-pressure, a
        # checkpoint) or for the group (joining waits out a dead member's session), and nothing is read then.
        idle = 0.0
        last_tick = 0.0
        while not self.shutdown.requested:
            polled = time.monotonic()
            batch = self.consumer.poll(timeout_ms=200, max_records=self.cfg.kafka.max_poll_records)
            now = time.time()
            if batch:
                idle = 0.0
                self._process(batch, now)  # skips (and rewinds) partitions whose state is not loaded yet
            else:
                idle += time.monotonic() - polled
            # (librdkafka restores inside poll: restored_at moved during it.)
            if partitions.restore_pending() or not partitions.joined or partitions.restored_at >= polled:
                idle = 0.0
            now_mono = time.monotonic()
            if now_mono - last_tick >= _TICK_SECONDS:
                last_tick = now_mono
                for w in partitions.restored():
                    self._emit_all(w, w.pipeline.tick(now), None)  # type: ignore[union-attr]
                self.reporter.lag(self.consumer, list(self.parts.values()))
            # Bulk requests go out in the background while the next records are processed (one in flight);
            # a finished one is settled (retries, dead letters) at once, not at the next submit. A batch goes
            # when full, when the flush interval has passed, or when the poll came back empty (caught up:
            # waiting would only delay the documents).
            if self.sink.full() or (
                self.sink.pending()
                and (not batch or now_mono - self._last_flush >= self.cfg.elasticsearch.flush_interval_seconds)
            ):
                self._flush(self.sink.submit)
            elif self.sink.in_flight_done():
                self._flush(self.sink.settle)
            if now_mono - self.checkpointer.last >= self.cfg.service.checkpoint_interval_seconds:
                self.checkpoint(list(self.parts.values()))
            if exit_when_idle is not None and idle >= exit_when_idle:
                log.info("idle for %.0f s: writing open sessions and exiting", exit_when_idle)
                for w in partitions.restored():
                    self._emit_all(w, w.pipeline.drain(), None)  # type: ignore[union-attr]
                return

    # -- processing ---------------------------------------------------------------------------------------
    def _process(self, batch: dict[Any, list[Any]], now: float) -> None:
        n = 0
        for tp, records in batch.items():
            w = self.parts.get(tp)
            if w is None or not w.restored:
                if w is not None and records:  # fetched before the pause took effect: read again after restore
                    self.consumer.seek(tp, records[0].offset)
                continue
            pipe = w.pipeline
            assert pipe is not None  # restored
            texts: list[str] = []
            keys: list[str | None] = []
            invalids: dict[int, bytes] = {}  # index → the record's bytes, where they are not UTF-8
            for r in records:
                raw = r.value
                if raw is None:
                    texts.append("")
                else:
                    try:
                        texts.append(raw.decode("utf-8"))
                    except UnicodeDecodeError:
                        invalids[len(texts)] = raw
                        texts.append(raw.decode("utf-8", "replace"))
                keys.append(r.key.decode("utf-8", "replace") if r.key else None)
            # The whole poll is typed at once (one native call per run of records), then fed in order.
            events = self._parse(pipe, texts, keys)
            for i, (r, ev) in enumerate(zip(records, events, strict=True)):
                try:
                    if isinstance(ev, Exception):
                        raise ev
                    docs = pipe.event_documents(ev, now)
                except Exception as exc:  # noqa: BLE001 - the policy decides (service.on_processing_error)
                    self._processing_failed(w, r, texts[i], invalids.get(i), exc)
                    docs = None
                if docs:
                    self._emit_all(w, docs, r.offset, texts[i], invalids.get(i))
                w.next_offset = r.offset + 1
            n += len(records)
            w.dirty = True
            self.reporter.partition_read(w)
        self.reporter.lines(n)
        self._set_open_gauge()

    @staticmethod
    def _parse(pipe: Pipeline, texts: list[str], keys: list[str | None]) -> list[Any]:
        """The poll's events; if typing the whole poll raises, each record alone (its exception in its place)."""
        try:
            return pipe.parser.parse_records(texts, keys)
        except Exception:  # noqa: BLE001 - find the record that raises: the others are processed as usual
            out: list[Any] = []
            for t, k in zip(texts, keys, strict=True):
                try:
                    out.append(pipe.parser.parse_record(t, k))
                except Exception as exc:  # noqa: BLE001
                    out.append(exc)
            return out

    def _processing_failed(self, w: PartitionWork, r: Any, text: str, invalid: bytes | None, exc: Exception) -> None:
        """A record made the pipeline raise: dead-letter it and go on, or stop (service.on_processing_error)."""
        where = f"{w.tp.topic}/{w.tp.partition}@{r.offset}"
        self.metrics.processing_errors.labels(exception=type(exc).__name__).inc()
        if self.cfg.service.on_processing_error == "stop":
            raise ProcessingError(where, exc) from exc
        log.warning("record %s made processing raise (%s: %s): dead-lettered", where, type(exc).__name__, exc)
        error: dict[str, Any] = {"type": "processing_error", "exception": type(exc).__name__, "message": str(exc)}
        if invalid is not None:
            error["original_base64"] = base64.b64encode(invalid).decode("ascii")
        source = {"topic": w.tp.topic, "partition": w.tp.partition, "offset": r.offset}
        self.dead_letters.send({"event": {"original": text}}, error, [source], key=where.encode())

    def _emit_all(
        self, w: PartitionWork, docs: Any, offset: int | None, record: str | None = None, invalid: bytes | None = None
    ) -> None:
        if offset is None and w.next_offset is not None and w.next_offset > 0:
            offset = w.next_offset - 1  # closed by the clock / at the end of a run: the last record read
        src = [{"topic": w.tp.topic, "partition": w.tp.partition, "offset": offset}] if offset is not None else []
        for doc in docs:
            w.dirty = True  # the state changed (sessions closed): worth a new snapshot
            event = doc.get("event") or {}
            if event.get("kind") == "pipeline_error":
                reason = (doc.get("error") or {}).get("code", "unknown_shape")
                self.metrics.unparsed.labels(reason=reason).inc()
                error: dict[str, Any] = {"type": "unparsed", "reason": reason}
                if record is not None and (doc.get("event") or {}).get("original") != record:
                    # The parser joins inner newlines and cuts very long records: keep the record as it came.
                    doc = {**doc, "event": {**doc["event"], "original": record}}
                    error["original_normalized_by_parser"] = True
                if invalid is not None:
                    error["encoding"] = "invalid utf-8: event.original has U+FFFD replacements"
                    error["original_base64"] = base64.b64encode(invalid).decode("ascii")
                self.dead_letters.send(doc, error, src)
                continue
            self.reporter.session_closed(doc)
            self.sink.add(doc, src, owner=w.tp)

    # -- flushing and checkpoints -------------------------------------------------------------------------
    def _keep_alive(self) -> None:
        """While the sink waits for Elasticsearch: pause, keep polling so the group keeps us."""
        if self._flushing:
            assignment = list(self.consumer.assignment())
            if assignment:
                self.consumer.pause(*assignment)  # every time: a partition may have been assigned meanwhile
            if not self._paused:
                self._paused = True
                self.health_state.paused()
        t0 = time.monotonic()
        got = self.consumer.poll(timeout_ms=0)
        for tp, records in (got or {}).items():
            # Records of a partition assigned during the wait: not processed now, so read them again later.
            if records:
                self.consumer.seek(tp, records[0].offset)
        self.metrics.backpressure_seconds.inc(time.monotonic() - t0)

    def _flush(self, write: Any = None) -> None:
        """Run a sink write (default: flush everything) with back-pressure while it retries."""
        self._flushing = True
        t0 = time.monotonic()
        try:
            (write or self.sink.flush)(self._keep_alive)
        finally:
            self._flushing = False
            if self._paused:
                self.metrics.backpressure_seconds.inc(time.monotonic() - t0)
                self.consumer.resume(*[w.tp for w in self.partitions.restored()])
                self._paused = False
                self.health_state.resumed()
            if write != self.sink.settle:  # settling sends nothing: the flush interval still runs
                self._last_flush = time.monotonic()

    def checkpoint(self, works: list[PartitionWork], rebalancing: bool = False) -> None:
        """Flush, snapshot each dirty partition, commit its offset (see checkpoint.Checkpointer)."""
        self.checkpointer.checkpoint(works, rebalancing)

    def _checkpoint_leaving(self, works: list[PartitionWork]) -> None:
        """The last checkpoint of revoked partitions, unless a flush is under way or the loop gave up."""
        if self._flushing or self._abandoned:
            return
        self.checkpoint(works, rebalancing=True)

    def _set_open_gauge(self) -> None:
        self.reporter.open_sessions(list(self.parts.values()))

