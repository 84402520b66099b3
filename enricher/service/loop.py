"""The streaming service: Kafka consumer group → per-partition pipelines → Elasticsearch and/or the sessions
topic (`service.outputs`), with checkpoints.

Guarantees (docs/decisions/durable-state.md):
- One pipeline (parser + stitcher) per assigned partition: all lines of an appliance share a partition, so
  a partition's state moves whole on a rebalance.
- Bulk requests overlap processing: the sink sends one batch at a time on a background thread and the main
  loop settles it (retries, dead letters) before sending the next. A checkpoint waits for the batch in
  flight and flushes the sinks (every document emitted so far is indexed, acknowledged on the sessions topic,
  or dead-lettered, and every dead letter is acknowledged by Kafka), writes each partition's state snapshot with the next offset to read, then
  commits that offset. Restore loads the snapshot and seeks to its offset; documents emitted after it are
  emitted again under the same ids (overwrite, no duplicates). The snapshot, not the committed offset, is
  what a restore trusts: a kill between the two is harmless.
- With kafka-python, restores (and the partition's pipeline) are made in the main loop, not inside the
  rebalance callback (which must stay short: it blocks the client's heartbeats, and kafka-python 3 runs it on
  its own thread); a partition is paused from its assignment until its state is loaded. librdkafka runs the
  callback inside poll() on the main loop's thread and heartbeats on its own: the state is restored there,
  unpaused (librdkafka starts fetching a partition resumed before its first fetch ~0.5 s late).
- While Elasticsearch (or the sessions topic) refuses writes the partitions are paused and the consumer keeps polling (stays in
  the group); nothing is dropped and nothing more is read. /healthz answers 503 meanwhile.
- On a revocation the partitions' documents are flushed with a deadline; if Elasticsearch does not take
  them in time, the partitions are given up without a checkpoint (the next owner restores the previous
  one) and their queued documents are discarded, so a stale version can never overwrite the next owner's.
- Dead letters (`kafka.dead_letter_topic`): a JSON object `{"document", "error", "sources"}`; `sources`
  lists `{"topic", "partition", "offset"}` of the record whose reading emitted the document (for documents
  closed by the clock or at the end of a batch run: the last record read from that partition). An
  unparsed record is kept as it came in `document.event.original` (the parser's copy joins inner newlines
  and is cut at 64 KiB); one that is not valid UTF-8 also keeps its exact bytes in `error.original_base64`. A dead letter larger than
  `DEAD_LETTER_MAX_BYTES` has its longest strings cut (listed in `error.truncated` with their size and
  SHA-256), so it always fits Kafka's default 1 MB message limit.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from enricher.config import Config
from enricher.core.pipeline import Pipeline
from enricher.edges.ports import StateStore
from enricher.edges.sinks.elasticsearch import ElasticsearchSink, FlushDeadline
from enricher.edges.sinks.fanout import Fanout
from enricher.edges.sinks.kafka_topic import KafkaTopicSink
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")

_TICK_SECONDS = 1.0
# How long a revocation may wait for Elasticsearch before giving the partitions up without a checkpoint
# (the rebalance callback blocks the consumer's heartbeats: it must stay well under the session timeout).
REVOKE_FLUSH_SECONDS = 4.0
# Largest dead-letter value written (bytes): a 1,000,000-byte line fits whole, and the record stays under the
# producer's (1 MiB) and the broker's (1 MiB + 12) default limits with room for key and framing.
DEAD_LETTER_MAX_BYTES = 1_040_000


@dataclass
class PartitionWork:
    """One assigned partition: its pipeline and how far it got."""

    tp: Any
    pipeline: Pipeline | None = None  # built by the main loop when the partition's state is restored
    next_offset: int | None = None
    checkpoint_no: int = 0
    dirty: bool = False
    commit_due: bool = False  # restored from a snapshot whose offset may be ahead of the group's commit
    restored: bool = False
    seen_unrecognized: int = 0
    seen_outcomes: dict[str, int] = field(default_factory=dict)  # line outcomes already exported as metrics
    seen_duplicates: int = 0
    closing_offsets: dict[str, int] = field(default_factory=dict)


class Service:
    """Runs the consume → stitch → index loop until stopped (or idle, for batch use)."""

    def __init__(
        self,
        cfg: Config,
        consumer: Any,
        producer: Any,
        es_client: Any,
        snapshots: StateStore,
        build_pipeline: Any,
        metrics: Metrics | None = None,
        sessions_producer: Any = None,
    ) -> None:
        self.cfg = cfg
        self.consumer = consumer
        self.producer = producer
        self.snapshots = snapshots
        self.build_pipeline = build_pipeline
        self.metrics = metrics or Metrics()
        self.topic = cfg.kafka.topic
        es = cfg.elasticsearch
        sinks: list[Any] = []
        if "elasticsearch" in cfg.service.outputs:
            sinks.append(
                ElasticsearchSink(
                    es_client,
                    es.index_prefix,
                    self._dead_letter,
                    self.metrics,
                    max_docs=es.bulk_max_docs,
                    max_bytes=es.bulk_max_bytes,
                    max_backoff=es.max_backoff_seconds,
                    should_stop=lambda: self._stop_now,
                )
            )
        if "kafka" in cfg.service.outputs:
            sinks.append(
                KafkaTopicSink(
                    sessions_producer,
                    cfg.kafka.sessions_topic,
                    self._dead_letter,
                    cfg.kafka.sessions_max_bytes,
                    self.metrics,
                    should_stop=lambda: self._stop_now,
                )
            )
        # One sink is driven directly (the hot path pays no dispatch); several through a fan-out.
        self.sink: Any = sinks[0] if len(sinks) == 1 else Fanout(sinks)
        self.parts: dict[Any, PartitionWork] = {}
        self._stop = False
        self._stop_now = False
        self._flushing = False
        self._paused = False
        self._joined = False
        self._resumed_at = 0.0
        # When partitions were last assigned and restored: the time until then (joining the group, which waits
        # out a dead member's session, and restoring inside librdkafka's callback) is not idleness either.
        self._restored_at = 0.0
        self._dead_letter_futures: list[Any] = []
        self._last_flush = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self._healthy = (True, "starting")
        self._closed_counters: dict[str, Any] = {}
        self.lines_read = 0
        self.outcomes: dict[str, int] = {}
        self._abort_counters: dict[tuple[str, str], Any] = {}

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
                now = time.time()
                if batch:
                    last_data = time.monotonic()
                    self._process(batch, now)  # skips (and rewinds) partitions whose state is not loaded yet
                if self._restore_pending():
                    last_data = time.monotonic()
                now_mono = time.monotonic()
                if now_mono - last_tick >= _TICK_SECONDS:
                    last_tick = now_mono
                    for w in list(self.parts.values()):
                        if w.restored:
                            self._emit_all(w, w.pipeline.tick(now), None)
                    self._update_lag()
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
                if now_mono - self._last_checkpoint >= self.cfg.service.checkpoint_interval_seconds:
                    self.checkpoint(list(self.parts.values()))
                # Time spent paused behind Elasticsearch is not idleness: nothing could be read meanwhile.
                idle_since = max(last_data, self._resumed_at, self._restored_at)
                if exit_when_idle is not None and self._joined and time.monotonic() - idle_since >= exit_when_idle:
                    log.info("idle for %.0f s: writing open sessions and exiting", exit_when_idle)
                    for w in list(self.parts.values()):
                        if w.restored:
                            self._emit_all(w, w.pipeline.drain(), None)
                    break
            self.checkpoint(list(self.parts.values()))
        except InterruptedError:
            log.warning("stopped with documents not yet written; they are re-read from the last checkpoint")
            return 1
        finally:
            self._healthy = (False, "stopped")
            log.info("summary %s", orjson.dumps(self.summary()).decode())
            try:
                self.producer.flush()
                # Closing revokes the partitions (kafka-python 3, librdkafka): the listener's checkpoint settles a
                # batch still in flight before anything is committed. Only then may the sink drop one.
                self.consumer.close(autocommit=False)
            finally:
                self.sink.close()
        return 0

    def _stream(self, tp: Any) -> str:
        """Whose state a checkpoint is: the consumer group's view of a topic (two groups never share state)."""
        return f"{self.cfg.kafka.group_id}/{tp.topic}"

    # -- partitions ---------------------------------------------------------------------------------------
    def _assign(self, tps: list[Any]) -> None:
        """Rebalance callback: note the new partitions and pause them until their state is restored.

        A client that runs its callbacks inside poll() on the main loop's thread (librdkafka) gets the state
        restored right here instead: no pause, and the first records come sooner."""
        self._joined = True
        new = [tp for tp in tps if tp not in self.parts]
        for tp in new:
            self.parts[tp] = PartitionWork(tp)
            self.sink.reown(tp)
        if not new:
            return
        if getattr(self.consumer, "callbacks_on_poll_thread", False):
            self._restore_pending()
        else:
            self.consumer.pause(*new)

    def _restore_pending(self) -> bool:
        """Load the checkpoint of each newly assigned partition, seek to its offset and resume it."""
        todo = [w for w in self.parts.values() if not w.restored]
        # One read of the state topic for every partition assigned (streams differ only across topics).
        loaded: dict[tuple[str, int], Any] = {}
        for stream in {self._stream(w.tp) for w in todo}:
            got = self.snapshots.load_many(stream, sorted(w.tp.partition for w in todo if self._stream(w.tp) == stream))
            loaded.update({(stream, p): c for p, c in got.items()})
        for w in todo:
            tp = w.tp
            # Built here, not in the rebalance callback: kafka-python 3 runs listeners on its I/O thread, and a
            # pipeline may hold thread-bound parts (the native parser's Typer panics when used across threads).
            w.pipeline = self.build_pipeline()
            ckpt = loaded[self._stream(tp), tp.partition]
            if ckpt is not None:
                w.pipeline.restore(ckpt.state)
                w.checkpoint_no = ckpt.number
                w.next_offset = ckpt.offset
                w.seen_unrecognized = w.pipeline.stitcher.stats.unrecognized
                w.seen_duplicates = w.pipeline.stitcher.stats.duplicates
                w.commit_due = True  # a kill between snapshot and commit leaves the commit behind: catch up
                self.consumer.seek(tp, ckpt.offset)
                self.metrics.restores.inc()
                log.info("partition %s: restored checkpoint %d at offset %d", tp.partition, ckpt.number, ckpt.offset)
            # Without a checkpoint the group's committed offset (or auto_offset_reset) is where it starts.
            w.restored = True
        if todo:
            self.consumer.resume(*[w.tp for w in todo])
            self._set_open_gauge()
            self._restored_at = time.monotonic()
        return bool(todo)

    def _revoke(self, tps: list[Any]) -> None:
        leaving = [self.parts[tp] for tp in tps if tp in self.parts]
        ready = [w for w in leaving if w.restored]
        if ready and not self._flushing:
            try:
                self.checkpoint(ready, rebalancing=True)
            except Exception:  # the next owner restores the previous checkpoint: nothing is lost
                log.exception("checkpoint on revoke failed; the next owner re-reads from the previous checkpoint")
        # Whatever of theirs is still queued (not written in time, or a flush in progress) is dropped: the next
        # owner emits it again from the checkpoint, and a late write must not overwrite a newer version.
        self.sink.discard(tps)
        for tp in tps:
            self.parts.pop(tp, None)
        self._set_open_gauge()

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
            for i, (r, ev) in enumerate(zip(records, pipe.parser.parse_records(texts, keys), strict=True)):
                docs = pipe.event_documents(ev, now)
                if docs:
                    self._emit_all(w, docs, r.offset, texts[i], invalids.get(i))
                w.next_offset = r.offset + 1
            n += len(records)
            w.dirty = True
            self._export_outcomes(w)
            unrec = pipe.stitcher.stats.unrecognized
            if unrec != w.seen_unrecognized:
                self.metrics.unparsed.labels(reason="unknown_shape_in_session").inc(unrec - w.seen_unrecognized)
                w.seen_unrecognized = unrec
            dups = pipe.stitcher.stats.duplicates
            if dups != w.seen_duplicates:
                self.metrics.duplicates.inc(dups - w.seen_duplicates)
                w.seen_duplicates = dups
        self.metrics.lines_in.inc(n)
        self.lines_read += n
        self._set_open_gauge()

    def _export_outcomes(self, w: PartitionWork) -> None:
        """Add what the partition's line outcomes grew by since the last call to the metrics and totals."""
        for outcome, n in w.pipeline.stats.line_outcomes(w.pipeline.stitcher).items():  # type: ignore[union-attr]
            grew = n - w.seen_outcomes.get(outcome, 0)
            if grew:
                self.metrics.lines_accounted.labels(outcome=outcome).inc(grew)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + grew
                w.seen_outcomes[outcome] = n

    def summary(self) -> dict[str, Any]:
        """Records read by this process and where each went (their sum is `lines`; a record read again after
        a restore counts again, in both)."""
        return {"lines": self.lines_read, "line_outcomes": dict(sorted(self.outcomes.items()))}

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
                self._dead_letter(doc, error, src)
                continue
            state = (doc.get("esa") or {}).get("session", {}).get("state", "")
            counter = self._closed_counters.get(state)
            if counter is None:  # labels() takes a lock and builds a key: once per state, not per document
                counter = self._closed_counters[state] = self.metrics.sessions_closed.labels(state=state)
            counter.inc()
            reason = doc.get("abort_reason")
            if reason:
                layer = doc.get("abort_layer", "")
                counter = self._abort_counters.get((reason, layer))
                if counter is None:
                    counter = self._abort_counters[reason, layer] = self.metrics.aborts.labels(reason=reason, layer=layer)
                counter.inc()
            self.sink.add(doc, src, owner=w.tp)

    def _dead_letter(self, doc: dict[str, Any], error: dict[str, Any], sources: list[Any]) -> None:
        record = {"document": doc, "error": error, "sources": sources}
        value = orjson.dumps(record)
        if len(value) > DEAD_LETTER_MAX_BYTES:
            value = orjson.dumps(shrink_dead_letter(record, DEAD_LETTER_MAX_BYTES))
        key = ((doc.get("event") or {}).get("id") or "").encode() or None
        self._dead_letter_futures.append(self.producer.send(self.cfg.kafka.dead_letter_topic, key=key, value=value))

    def _confirm_dead_letters(self) -> None:
        """After producer.flush(): every dead letter must be in Kafka before an offset past it is committed."""
        futures, self._dead_letter_futures = self._dead_letter_futures, []
        for f in futures:
            if f.failed():
                raise RuntimeError(f"a dead letter could not be written to {self.cfg.kafka.dead_letter_topic}: {f.exception!r}")

    # -- flushing and checkpoints -------------------------------------------------------------------------
    def _sink_names(self) -> str:
        """The outputs that may be refusing writes, as /healthz and the log name them."""
        names = {"elasticsearch": "Elasticsearch", "kafka": f"the sessions topic ({self.cfg.kafka.sessions_topic})"}
        return " or ".join(names[o] for o in self.cfg.service.outputs)

    def _keep_alive(self) -> None:
        """While the sink waits for Elasticsearch: pause, keep polling so the group keeps us."""
        if self._flushing:
            assignment = list(self.consumer.assignment())
            if assignment:
                self.consumer.pause(*assignment)  # every time: a partition may have been assigned meanwhile
            if not self._paused:
                self._paused = True
                sinks = self._sink_names()
                self._healthy = (False, f"{sinks} refuses writes: partitions paused, retrying")
                log.warning("%s refuses writes: consumer paused, retrying", sinks)
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
                self.consumer.resume(*[tp for tp, w in self.parts.items() if w.restored])
                self._paused = False
                self._resumed_at = time.monotonic()
                self._healthy = (True, "running")
                log.info("the sinks accept writes again: consumer resumed")
            if write != self.sink.settle:  # settling sends nothing: the flush interval still runs
                self._last_flush = time.monotonic()

    def checkpoint(self, works: list[PartitionWork], rebalancing: bool = False) -> None:
        """Flush, snapshot each dirty partition, commit its offset."""
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        t0 = time.monotonic()
        if rebalancing:
            # No polling from inside a rebalance callback, and not for long: it holds up the heartbeats.
            try:
                self.sink.flush(None, deadline=time.monotonic() + REVOKE_FLUSH_SECONDS)
            except FlushDeadline:
                log.warning("Elasticsearch did not take the documents in time: partitions given up without checkpoint")
                return
        else:
            self._flush()
        self.producer.flush()
        self._confirm_dead_letters()
        offsets = {}
        for w in works:
            if not w.restored or w.next_offset is None:
                continue
            if not w.dirty:
                if w.commit_due:  # nothing new since the restore: only commit the snapshot's offset
                    offsets[w.tp] = OffsetAndMetadata(w.next_offset, "", -1)
                    w.commit_due = False
                continue
            w.commit_due = False
            w.checkpoint_no += 1
            state = w.pipeline.snapshot()
            self.snapshots.save(self._stream(w.tp), w.tp.partition, w.checkpoint_no, w.next_offset, state)
            size = getattr(self.snapshots, "last_size", None)
            if size is not None:
                self.metrics.checkpoint_bytes.labels(partition=str(w.tp.partition)).set(size)
            offsets[w.tp] = OffsetAndMetadata(w.next_offset, "", -1)
            w.dirty = False
        if offsets:
            try:
                self.consumer.commit(offsets)
                self.metrics.checkpoints.inc()
            except CommitFailedError as exc:
                # The group is rebalancing: the snapshots just written are what the next owner restores.
                log.warning("offset commit refused (%s); the state snapshots stand", exc)
        self._last_checkpoint = time.monotonic()
        self.metrics.checkpoint_seconds.observe(self._last_checkpoint - t0)

    def _set_open_gauge(self) -> None:
        self.metrics.sessions_open.set(
            sum(w.pipeline.stitcher.open_sessions() for w in self.parts.values() if w.pipeline is not None)
        )

    def _update_lag(self) -> None:
        for tp, w in self.parts.items():
            hw = self.consumer.highwater(tp)
            if hw is not None and w.next_offset is not None:
                self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(0, hw - w.next_offset))


def shrink_dead_letter(record: dict[str, Any], limit: int) -> dict[str, Any]:
    """A copy of a dead letter whose longest strings are cut until it fits `limit` bytes (each cut is listed
    in `error.truncated` with the original size and SHA-256, so the original can be found and checked)."""
    out = orjson.loads(orjson.dumps(record))
    cuts: list[dict[str, Any]] = []
    out["error"] = dict(out.get("error") or {}, truncated=cuts)
    strings: list[tuple[int, list[Any] | dict[str, Any], Any, str]] = []

    def walk(node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and len(v) > 256:
                strings.append((len(orjson.dumps(v)), node, k, p))  # encoded size: escapes count
            elif isinstance(v, (dict, list)):
                walk(v, p)

    walk(out, "")
    strings.sort(key=lambda s: -s[0])
    size = len(orjson.dumps(out))
    for _, node, k, path in strings:
        if size <= limit:
            break
        original = node[k].encode("utf-8")
        data = original
        while size > limit and len(data) > 256:
            keep = max(256, min(len(data) - (size - limit) - 2048, len(data) * 3 // 4))  # ≥ 25 % less each time
            data = data[:keep]
            node[k] = data.decode("utf-8", "ignore")
            size = len(orjson.dumps(out))
        cuts.append(
            {"path": path, "bytes": len(original), "kept_bytes": len(data), "sha256": hashlib.sha256(original).hexdigest()}
        )
    if size > limit:  # many small strings: keep the identity of the document and the head of its JSON
        doc = record.get("document") or {}
        text = orjson.dumps(doc).decode("utf-8")
        out["document"] = {
            "event": {"id": (doc.get("event") or {}).get("id")},
            "document_json_head": text[: limit // 2],
        }
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        cuts.append({"path": "document", "bytes": len(text), "kept_bytes": limit // 2, "sha256": digest})
    return out
