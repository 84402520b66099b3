"""Elasticsearch sink: bulk writes with deterministic ids, capped-backoff retries, dead letters.

- Every document goes to the concrete monthly index of its `@timestamp` with `_id = event.id`, so a
  session written again (replay, restart, update of a partial session) overwrites instead of duplicating.
- Connection errors, timeouts, 429 and 5xx are retried forever with capped exponential backoff and jitter:
  the caller's `keep_alive` runs while waiting (the Kafka service pauses its partitions and keeps polling,
  which is the back-pressure: nothing is dropped, nothing more is read). Any other failure of a request
  raises and stops the service (retry.py says which is which).
- Per-item rejections that retrying cannot fix (mapping errors, 400s) go to `dead_letter(doc, error, sources)`.
- `flush()` returns only when every queued document is indexed or dead-lettered: the service checkpoints
  (and commits offsets) only after it. With a `deadline` it raises `FlushDeadline` instead of waiting
  longer, and what was not written stays queued.
- `submit()` overlaps indexing with processing: it sends the next batch on a background thread and returns.
  At most one request is in flight; the thread only sends it (the socket wait releases the GIL). Its result
  is settled on the caller's thread by the next `submit()` or `flush()`, which wait for it first: retries,
  back-off, back-pressure and dead letters work exactly as in a synchronous flush, and batches reach
  Elasticsearch in the order they were queued (a newer version of a document is never overtaken).
- Each document remembers its owner (the source partition); `discard(owners)` drops what is queued for
  partitions given up in a rebalance, including documents in the middle of a retrying flush, so a stale
  version never overwrites the one the partition's next owner writes.
- Documents are encoded once, when queued (encoder.py: `event.ingested` is the time of the request that
  writes them). Every document dropped unwritten (its partition given up, or still queued at close) is
  counted in `esa_documents_dropped_total`; every dead letter in `esa_dead_letters_total`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

from enricher.edges.ports import DeadLetter, FlushDeadline, KeepAlive, SinkClosed
from enricher.edges.sinks.backoff import backoff_delay, wait_alive
from enricher.edges.sinks.elasticsearch.encoder import Item, bulk_body, encode, index_for
from enricher.edges.sinks.elasticsearch.retry import retry_status, retryable_status
from enricher.telemetry import Metrics

# Only what settling reads: each item's status and error (the full answer is ~6x larger to write, send and
# parse, for 2,000 items a request).
_BULK_FILTER = "items.*.status,items.*.error"


class ElasticsearchSink:
    """Queues documents and writes them with the bulk API."""

    def __init__(
        self,
        client: Any,
        index_prefix: str,
        dead_letter: DeadLetter,
        metrics: Metrics | None = None,
        max_docs: int = 2000,
        max_bytes: int = 8 << 20,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        should_stop: Callable[[], bool] = lambda: False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.index_prefix = index_prefix
        self.dead_letter = dead_letter
        self.metrics = metrics or Metrics()
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.should_stop = should_stop
        self.sleep = sleep
        self._queue: list[Item] = []
        self._bytes = 0
        # Documents of one session queued twice before a flush: only the last one needs writing.
        self._by_id: dict[str, int] = {}
        # Owner → epoch: discard() moves an owner to a new epoch; items of an older epoch are never written.
        self._epochs: dict[Any, int] = {}
        # The batch being sent by submit() and its (response, exception) to come; one at a time.
        self._in_flight: tuple[list[Item], Future[tuple[Any, Exception | None]]] | None = None
        self._sender: ThreadPoolExecutor | None = None
        self._closed = False

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document (with the Kafka offsets it came from, for dead letters, and its partition)."""
        if self._closed:
            raise SinkClosed("a document was added to the Elasticsearch sink after close()")
        doc_id = (doc.get("event") or {}).get("id")
        line, slot = encode(doc)
        item = Item(
            index_for(self.index_prefix, doc), doc_id, line, slot, sources or [], owner, self._epochs.get(owner, 0)
        )
        if doc_id is not None and doc_id in self._by_id:
            i = self._by_id[doc_id]
            self._bytes += len(item.line) - len(self._queue[i].line)
            item.sources = self._queue[i].sources + item.sources
            self._queue[i] = item
            return
        if doc_id is not None:
            self._by_id[doc_id] = len(self._queue)
        self._queue.append(item)
        self._bytes += len(item.line)

    def pending(self) -> int:
        """Documents queued and not yet sent (a batch in flight is not counted)."""
        return len(self._queue)

    def in_flight(self) -> int:
        """Documents of the batch being sent in the background."""
        return len(self._in_flight[0]) if self._in_flight is not None else 0

    def full(self) -> bool:
        """True when a flush is due by size."""
        return len(self._queue) >= self.max_docs or self._bytes >= self.max_bytes

    def discard(self, owners: Any) -> int:
        """Drop every queued (or being retried) document of these owners; returns how many were queued."""
        owners = set(owners)
        if not owners:
            return 0
        for o in owners:
            self._epochs[o] = self._epochs.get(o, 0) + 1
        keep = [it for it in self._queue if it.owner not in owners]
        dropped = len(self._queue) - len(keep)
        self._dropped(dropped, "revoked")
        if dropped:
            self._queue = []
            self._bytes = 0
            self._by_id = {}
            for it in keep:
                self._requeue(it)
        return dropped

    def reown(self, owner: Any) -> None:
        """An owner (partition) is assigned again: nothing to do but documenting that epochs only grow."""
        self._epochs.setdefault(owner, 0)

    def _live(self, it: Item) -> bool:
        return it.epoch == self._epochs.get(it.owner, 0)

    def _dropped(self, n: int, reason: str) -> None:
        if n:
            self.metrics.documents_dropped.labels(reason=reason).inc(n)

    def _requeue_live(self, items: list[Item]) -> None:
        """Queue again what a failed write left, except the documents of partitions given up meanwhile."""
        for it in items:
            if self._live(it):
                self._requeue(it)
            else:
                self._dropped(1, "revoked")

    def _requeue(self, it: Item) -> None:
        if it.doc_id is not None:
            if it.doc_id in self._by_id:  # a newer version was queued meanwhile: it wins
                return
            self._by_id[it.doc_id] = len(self._queue)
        self._queue.append(it)
        self._bytes += len(it.line)

    def submit(self, keep_alive: KeepAlive | None = None) -> None:
        """Settle the batch in flight (retrying like `flush`), then start sending the next one in the background."""
        self._settle_in_flight(keep_alive, None)
        if not self._queue:
            return
        batch, rest = self._queue[: self.max_docs], self._queue[self.max_docs :]
        self._queue, self._bytes, self._by_id = [], 0, {}
        for it in rest:
            self._requeue(it)
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="es-bulk")
        self._in_flight = (batch, self._sender.submit(self._send, bulk_body(batch)))

    def in_flight_done(self) -> bool:
        """True when the batch in flight has its answer (settle it to act on it)."""
        return self._in_flight is not None and self._in_flight[1].done()

    def settle(self, keep_alive: KeepAlive | None = None) -> None:
        """Finish the batch in flight (waiting for it): retries with back-off, dead letters, metrics."""
        self._settle_in_flight(keep_alive, None)

    def _settle_in_flight(self, keep_alive: KeepAlive | None, deadline: float | None) -> None:
        if self._in_flight is None:
            return
        items, sent = self._in_flight
        self._in_flight = None
        left: list[Item] = []
        try:
            self._write(items, keep_alive, deadline, left, sent)
        except BaseException:
            self._requeue_live(left)
            raise

    def close(self) -> None:
        """Wait for a request still in flight and stop the sender thread. The request's outcome is not settled:
        nothing may be committed after this (what it held, and what is still queued, is re-read from the last
        checkpoint). A later `add` raises `SinkClosed`."""
        self._closed = True
        self._dropped(len(self._queue) + self.in_flight(), "closed")
        self._queue, self._bytes, self._by_id = [], 0, {}
        self._in_flight = None
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None

    def flush(self, keep_alive: KeepAlive | None = None, deadline: float | None = None) -> None:
        """Write everything queued; returns when each document is indexed or dead-lettered.

        With `deadline` (a time.monotonic() value), raises FlushDeadline when it passes, with the unwritten
        documents queued again. On any other exception (stop requested) they are queued again as well. A
        batch in flight is waited for first, however long its request takes (never given up half-sent: a
        late write of a partition given up could overwrite what its next owner wrote).
        """
        self._settle_in_flight(keep_alive, deadline)
        items, self._queue, self._bytes, self._by_id = self._queue, [], 0, {}
        batches = [items[start : start + self.max_docs] for start in range(0, len(items), self.max_docs)]
        for i, batch in enumerate(batches):
            left: list[Item] = []
            try:
                self._write(batch, keep_alive, deadline, left)
            except BaseException:
                self._requeue_live([*left, *(x for b in batches[i + 1 :] for x in b)])
                raise

    def _write(
        self,
        items: list[Item],
        keep_alive: KeepAlive | None,
        deadline: float | None,
        left: list[Item],
        sent: Future[tuple[Any, Exception | None]] | None = None,
    ) -> None:
        """Write `items` (their first request already `sent` in the background, if given) until none is left."""
        attempt = 0
        left[:] = items
        while True:
            if sent is not None:
                retry, status = self._settle(items, *sent.result())
                sent = None
            else:
                live = [it for it in items if self._live(it)]  # a rebalance may have given some of them up
                self._dropped(len(items) - len(live), "revoked")
                items = live
                left[:] = items
                if not items:
                    return
                retry, status = self._settle(items, *self._send(bulk_body(items)))
            left[:] = retry
            if not retry:
                return
            if self.should_stop():
                raise InterruptedError("stopping with documents not yet written")
            attempt += 1
            self.metrics.bulk_retries.labels(status=status).inc(len(retry))
            delay = backoff_delay(attempt, self.initial_backoff, self.max_backoff)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise FlushDeadline(f"{len(retry)} documents not written before the deadline")
            self._wait(delay, keep_alive)
            items = retry

    def _wait(self, delay: float, keep_alive: KeepAlive | None) -> None:
        wait_alive(delay, keep_alive, self.sleep)

    def _send(self, body: bytes) -> tuple[Any, Exception | None]:
        """One bulk request: (response, None) or (None, the exception). Runs on the sender thread too."""
        t0 = time.perf_counter()
        try:
            return self.client.bulk(operations=body, filter_path=_BULK_FILTER), None
        except Exception as exc:  # classified on the caller's thread (retry.py): retried, or it stops the service
            return None, exc
        finally:
            self.metrics.bulk_latency.observe(time.perf_counter() - t0)

    def _settle(self, items: list[Item], resp: Any, exc: Exception | None) -> tuple[list[Item], str]:
        """The outcome of one bulk request: dead letters sent, the items to retry returned, with why."""
        if exc is not None:
            status = retry_status(exc)  # raises for what retrying cannot fix (configuration, 4xx, a bug)
            self.metrics.bulk_failures.labels(reason=type(exc).__name__).inc()
            return items, status
        retry: list[Item] = []
        done = 0
        for it, result in zip(items, resp["items"], strict=True):
            r = result.get("index") or next(iter(result.values()))
            st = r.get("status", 500)
            if 200 <= st < 300:
                done += 1
            elif retryable_status(st):
                retry.append(it)
            else:
                self.metrics.dead_letters.labels(reason=str(st)).inc()
                error = {"status": st, "error": r.get("error"), "index": it.index}
                self.dead_letter(orjson.loads(it.stamped()), error, it.sources)
        self.metrics.documents_written.inc(done)
        return retry, "429" if retry else ""

