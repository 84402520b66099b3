"""Kafka topic sink: every session document on a compacted topic, key = `event.id`, value = the document.

The same guarantees as the Elasticsearch sink (docs/sessions-topic.md), built the same way:
- Deterministic key: a session written again (late lines, restart, rebalance) is a new record under the same
  key, and compaction keeps the last one. The value is the document as `replay` writes it (sorted keys, no
  `event.ingested`: the store that takes the document sets it), so a restart republishes the same bytes.
- Idempotent producer (librdkafka, `enable.idempotence`): retries never duplicate or reorder the records of a
  partition, so the last record of a key is the last version queued.
- `flush()` returns only when every queued document is acknowledged by all in-sync replicas or dead-lettered:
  the service writes its state checkpoint and commits the source offsets only after it, so a `kill -9`
  re-reads at most one checkpoint interval and publishes the same documents again under the same keys.
- A document larger than `max_bytes`, or one the broker refuses for good (size, invalid record), goes to the
  dead-letter topic like one Elasticsearch refuses. A delivery that failed for a passing reason (timeout,
  broker away) is produced again, unless a newer version of its key was queued since (that one wins: an
  older version must never land after it).
- `discard(owners)` drops what is queued for partitions given up in a rebalance and purges the producer's
  queue (what is purged for partitions still owned is produced again), so a stale version cannot land
  after the next owner's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from enricher.edges.ports import DeadLetter, FlushDeadline, KeepAlive, SinkClosed
from enricher.edges.sinks.backoff import wait_alive
from enricher.telemetry import Metrics

_SORTED = orjson.OPT_SORT_KEYS  # the bytes of `replay`'s line (enricher.edges.sinks.ndjson), without the newline
# Deliveries the broker refuses for good: dead letters, as Elasticsearch's 400s. Names of librdkafka's codes.
_REFUSED = frozenset(("MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "CORRUPT_MESSAGE", "RECORD_LIST_TOO_LARGE", "_MSG_SIZE"))
_BACKOFF_SECONDS = 0.5  # before producing again what failed for a passing reason (librdkafka retried it already)
_PATIENCE_SECONDS = 2.0  # a flush waiting longer than this keeps the consumer alive (pauses it, polls)


@dataclass(slots=True)
class _Item:
    doc_id: str
    value: bytes
    sources: list[Any]
    owner: Any
    epoch: int
    seq: int = 0  # which version of its key this is (the latest produced one is the one that may be retried)


class KafkaTopicSink:
    """Queues documents and produces them to one topic with an idempotent librdkafka producer."""

    def __init__(
        self,
        producer: Any,
        topic: str,
        dead_letter: DeadLetter,
        max_bytes: int,  # kafka.sessions_max_bytes
        metrics: Metrics | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.dead_letter = dead_letter
        self.metrics = metrics or Metrics()
        self.max_bytes = max_bytes
        self.should_stop = should_stop
        self.sleep = sleep
        self._queue: dict[str, _Item] = {}  # event.id → its latest version not yet produced (insertion order)
        self._epochs: dict[Any, int] = {}
        self._seq = 0
        self._latest: dict[str, int] = {}  # event.id → seq of its latest version handed to the producer
        self._outstanding = 0  # handed to the producer, no delivery report yet
        self._failed: list[tuple[_Item, Any]] = []  # delivery reports with an error, settled on the caller's thread
        self._closed = False

    # -- the interface the service drives (the Elasticsearch sink's) -------------------------------------
    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document (with the Kafka offsets it came from, for dead letters, and its partition)."""
        if self._closed:
            raise SinkClosed(f"a document was added to the sink of {self.topic} after close()")
        doc_id = (doc.get("event") or {}).get("id")
        if not doc_id:  # every session document has one; without it there is no key to compact on
            self.metrics.dead_letters.labels(reason="no_event_id").inc()
            self.dead_letter(doc, {"type": "sessions_topic", "reason": "no event.id"}, sources or [])
            return
        value = orjson.dumps(doc, option=_SORTED)
        old = self._queue.pop(doc_id, None)  # only the last version of a session needs producing
        merged = (old.sources if old is not None else []) + (sources or [])
        if len(value) > self.max_bytes:
            self.metrics.dead_letters.labels(reason="too_large").inc()
            error = {"type": "sessions_topic", "reason": "too_large", "bytes": len(value), "max_bytes": self.max_bytes}
            self.dead_letter(doc, error, merged)
            return
        self._queue[doc_id] = _Item(doc_id, value, merged, owner, self._epochs.get(owner, 0))

    def pending(self) -> int:
        """Documents queued and not yet produced."""
        return len(self._queue)

    def in_flight(self) -> int:
        """Documents produced and not yet acknowledged."""
        return self._outstanding

    def full(self) -> bool:
        """Never: the producer batches by itself; documents go at each submit."""
        return False

    def in_flight_done(self) -> bool:
        """True while documents await their delivery reports (settling serves them, without waiting)."""
        return self._outstanding > 0

    def reown(self, owner: Any) -> None:
        """An owner (partition) is assigned again: epochs only grow."""
        self._epochs.setdefault(owner, 0)

    def discard(self, owners: Any) -> int:
        """Drop every queued document of these owners and purge the producer's queue; returns how many were queued."""
        owners = set(owners)
        if not owners:
            return 0
        for o in owners:
            self._epochs[o] = self._epochs.get(o, 0) + 1
        dropped = [k for k, it in self._queue.items() if it.owner in owners]
        for k in dropped:
            del self._queue[k]
        if dropped:
            self.metrics.documents_dropped.labels(reason="revoked").inc(len(dropped))
        if self._outstanding:
            # Not yet sent: purged (reported as failed, and produced again when their partition is still ours).
            # Already on the wire: they land before anything the next owner writes (it restores a checkpoint that
            # waited for them, or an older one whose documents it writes after them).
            self.producer.purge(in_queue=True, in_flight=False, blocking=True)
            self.producer.poll(0)
        return len(dropped)

    def submit(self, keep_alive: KeepAlive | None = None) -> None:
        """Hand everything queued to the producer (it sends in the background) and serve delivery reports."""
        self._settle_failed(keep_alive)
        items, self._queue = self._queue, {}
        for it in items.values():
            if self._live(it):
                self._produce(it, keep_alive)
        self.producer.poll(0)

    def settle(self, keep_alive: KeepAlive | None = None) -> None:
        """Serve delivery reports: dead letters for refusals, passing failures queued again."""
        self.producer.poll(0)
        self._settle_failed(keep_alive)

    def flush(self, keep_alive: KeepAlive | None = None, deadline: float | None = None) -> None:
        """Produce everything queued; returns when each document is acknowledged or dead-lettered.

        With `deadline` (a time.monotonic() value), raises FlushDeadline when it passes (documents not
        acknowledged stay queued in the producer). A stop requested while Kafka refuses raises InterruptedError.
        """
        started = time.monotonic()
        while True:
            self.submit(keep_alive)
            while self._outstanding:
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    raise FlushDeadline(f"{self._outstanding} documents not acknowledged before the deadline")
                self.producer.flush(wait)
                # Kafka is slow to acknowledge: keep the consumer in its group meanwhile (not at every wait:
                # keep_alive pauses the partitions).
                if self._outstanding and keep_alive is not None and time.monotonic() - started > _PATIENCE_SECONDS:
                    keep_alive()
            self._settle_failed(keep_alive)
            if not self._queue:
                return
            if self.should_stop():
                raise InterruptedError("stopping with documents not yet written")
            if deadline is not None and time.monotonic() + _BACKOFF_SECONDS > deadline:
                raise FlushDeadline(f"{len(self._queue)} documents not written before the deadline")
            wait_alive(_BACKOFF_SECONDS, keep_alive, self.sleep)

    def close(self) -> None:
        """Stop taking documents: the producer was flushed by the last checkpoint (what it did not take, and what
        is still queued here, is re-read from it). A later `add` raises `SinkClosed`."""
        self._closed = True
        if self._queue:
            self.metrics.documents_dropped.labels(reason="closed").inc(len(self._queue))
            self._queue = {}

    # -- internals ----------------------------------------------------------------------------------------
    def _live(self, it: _Item) -> bool:
        return it.epoch == self._epochs.get(it.owner, 0)

    def _produce(self, it: _Item, keep_alive: KeepAlive | None) -> None:
        self._seq += 1
        it.seq = self._seq
        self._latest[it.doc_id] = it.seq
        while True:
            try:
                self.producer.produce(self.topic, it.value, it.doc_id.encode(), on_delivery=self._report(it))
                break
            except BufferError:  # the producer's queue is full: let it send, keep the consumer alive
                self.producer.poll(0.1)
                if keep_alive is not None:
                    keep_alive()
        self._outstanding += 1

    def _report(self, it: _Item) -> Callable[[Any, Any], None]:
        def delivered(err: Any, _msg: Any) -> None:
            self._outstanding -= 1
            if err is None:
                if self._latest.get(it.doc_id) == it.seq:
                    del self._latest[it.doc_id]
                self.metrics.topic_documents_written.inc()
            else:
                self._failed.append((it, err))

        return delivered

    def _settle_failed(self, keep_alive: KeepAlive | None) -> None:
        failed, self._failed = self._failed, []
        for it, err in failed:
            latest = self._latest.get(it.doc_id) == it.seq
            if latest:
                del self._latest[it.doc_id]
            if err.fatal():  # the idempotent producer cannot go on (fenced, sequence lost): restart from the checkpoint
                raise RuntimeError(f"producer of {self.topic} failed: {err}")
            name = err.name()
            if name in _REFUSED:
                self.metrics.dead_letters.labels(reason=name.lower().lstrip("_")).inc()
                error = {"type": "sessions_topic", "reason": name, "error": err.str(), "topic": self.topic}
                self.dead_letter(orjson.loads(it.value), error, it.sources)
            elif not self._live(it):  # its partition was given up: the next owner writes it
                self.metrics.documents_dropped.labels(reason="revoked").inc()
            elif latest and it.doc_id not in self._queue:
                # A passing failure (timeout, purge, broker away): again, unless a newer version is queued or sent.
                self.metrics.topic_retries.labels(reason=name.lower().lstrip("_")).inc()
                self._queue[it.doc_id] = it

