"""Elasticsearch sink: bulk writes with deterministic ids, capped-backoff retries, dead letters.

- Every document goes to the concrete monthly index of its `@timestamp` with `_id = event.id`, so a
  session written again (replay, restart, update of a partial session) overwrites instead of duplicating.
- 429, 5xx and connection errors are retried forever with capped exponential backoff and jitter: the
  caller's `keep_alive` runs while waiting (the Kafka service pauses its partitions and keeps polling,
  which is the back-pressure: nothing is dropped, nothing more is read).
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
- `event.ingested` (ECS: when the document reached the store; detection rules use it as their
  `timestamp_override`, so a document written late is still seen) is the time of the bulk request that
  writes the document, set here and not by the document builder, so replay's NDJSON stays deterministic.
  A document is encoded once, when queued, with a placeholder value; each request (a retry too) writes its
  own time over the placeholder, so a document held back by an outage gets the time it was written.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from enricher.errors import EnricherError
from enricher.telemetry import Metrics

DeadLetter = Callable[[dict[str, Any], dict[str, Any], list[Any]], None]

_RETRY_STATUS = frozenset((408, 429, 500, 502, 503, 504))
_BULK_FILTER = "items.*.status,items.*.error"
# Encoded where `event.ingested` goes, replaced by the request's time: never sent as it is.
_INGESTED_SLOT = "0000-00-00T00:00:00.000Z"
_SLOT_BYTES = orjson.dumps({"ingested": _INGESTED_SLOT})[1:-1]  # b'"ingested":"0000-…Z"'
_SLOT_SKIP = len(b'"ingested":"')


class ElasticsearchAccessError(EnricherError):
    """Elasticsearch cannot be used as configured: its certificate is not trusted, or it refused the credentials."""


def access_error(exc: BaseException) -> ElasticsearchAccessError | None:
    """A clear error for a TLS or credentials failure (None for anything else: that may pass, and is retried)."""
    from elastic_transport import TlsError

    if isinstance(exc, TlsError):
        return ElasticsearchAccessError(
            f"Elasticsearch's TLS certificate is not accepted: {exc.message} (check elasticsearch.ca_certs, "
            "elasticsearch.ssl_assert_fingerprint or elasticsearch.verify_certs)"
        )
    status = getattr(getattr(exc, "meta", None), "status", None)
    if status in (401, 403):
        what = "refused the credentials" if status == 401 else "does not allow this for these credentials"
        reason = getattr(exc, "message", "") or type(exc).__name__
        return ElasticsearchAccessError(
            f"Elasticsearch {what} (HTTP {status} {reason}; check elasticsearch.api_key or username/password)"
        )
    return None


class FlushDeadline(Exception):
    """`flush(deadline=…)` ran out of time; the documents not written are still queued."""


def wait_alive(delay: float, keep_alive: Callable[[], None] | None, sleep: Callable[[float], None]) -> None:
    """Back off for `delay` seconds, running `keep_alive` (the consumer's pause-and-poll) at least every second."""
    end = time.monotonic() + delay
    while True:
        if keep_alive is not None:
            keep_alive()
        left = end - time.monotonic()
        if left <= 0:
            return
        sleep(min(left, 1.0))


def index_for(prefix: str, doc: dict[str, Any]) -> str:
    """The concrete index of a document: `<prefix>-YYYY.MM`, the UTC month of its @timestamp (see es_assets)."""
    ts = doc.get("@timestamp")
    if not isinstance(ts, str) or len(ts) < 7:
        return f"{prefix}-undated"
    if ts.endswith("Z"):  # what documents.py writes: already UTC
        return f"{prefix}-{ts[0:4]}.{ts[5:7]}"
    from enricher.edges.sinks.es_assets import index_name

    return index_name(prefix, ts)


def encode(doc: dict[str, Any]) -> tuple[bytes, int]:
    """The document as JSON with an `event.ingested` placeholder, and where the placeholder's value starts."""
    event = doc.get("event")
    stamped = {**event, "ingested": _INGESTED_SLOT} if isinstance(event, dict) else {"ingested": _INGESTED_SLOT}
    line = orjson.dumps({**doc, "event": stamped})
    # Unique: inside a JSON string every quote is escaped, so this byte sequence can only be our key and value.
    return line, line.find(_SLOT_BYTES) + _SLOT_SKIP


def ingested_now() -> str:
    """The current time as `event.ingested` writes it: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Item:
    index: str
    doc_id: str | None
    line: bytes  # the encoded document (the only copy kept: decoded again for a dead letter)
    slot: int  # where the `event.ingested` placeholder's value starts in `line`
    sources: list[Any] = field(default_factory=list)
    owner: Any = None
    epoch: int = 0
    ingested: str = _INGESTED_SLOT  # the time the last request that carried it wrote

    def stamped(self) -> bytes:
        """The document as last sent: its `event.ingested` is that request's time."""
        return self.line[: self.slot] + self.ingested.encode() + self.line[self.slot + len(_INGESTED_SLOT) :]


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
        self._queue: list[_Item] = []
        self._bytes = 0
        # Documents of one session queued twice before a flush: only the last one needs writing.
        self._by_id: dict[str, int] = {}
        # Owner → epoch: discard() moves an owner to a new epoch; items of an older epoch are never written.
        self._epochs: dict[Any, int] = {}
        # The batch being sent by submit() and its (response, exception) to come; one at a time.
        self._in_flight: tuple[list[_Item], Future[tuple[Any, Exception | None]]] | None = None
        self._sender: ThreadPoolExecutor | None = None

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document (with the Kafka offsets it came from, for dead letters, and its partition)."""
        doc_id = (doc.get("event") or {}).get("id")
        line, slot = encode(doc)
        item = _Item(
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

    def _live(self, it: _Item) -> bool:
        return it.epoch == self._epochs.get(it.owner, 0)

    def _requeue(self, it: _Item) -> None:
        if it.doc_id is not None:
            if it.doc_id in self._by_id:  # a newer version was queued meanwhile: it wins
                return
            self._by_id[it.doc_id] = len(self._queue)
        self._queue.append(it)
        self._bytes += len(it.line)

    def submit(self, keep_alive: Callable[[], None] | None = None) -> None:
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
        self._in_flight = (batch, self._sender.submit(self._send, self._body(batch)))

    def in_flight_done(self) -> bool:
        """True when the batch in flight has its answer (settle it to act on it)."""
        return self._in_flight is not None and self._in_flight[1].done()

    def settle(self, keep_alive: Callable[[], None] | None = None) -> None:
        """Finish the batch in flight (waiting for it): retries with back-off, dead letters, metrics."""
        self._settle_in_flight(keep_alive, None)

    def _settle_in_flight(self, keep_alive: Callable[[], None] | None, deadline: float | None) -> None:
        if self._in_flight is None:
            return
        items, sent = self._in_flight
        self._in_flight = None
        left: list[_Item] = []
        try:
            self._write(items, keep_alive, deadline, left, sent)
        except BaseException:
            for it in left:
                if self._live(it):
                    self._requeue(it)
            raise

    def close(self) -> None:
        """Wait for a request still in flight and stop the sender thread. The request's outcome is not settled:
        nothing may be committed after this (what it held is re-read from the last checkpoint)."""
        self._in_flight = None
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None

    def flush(self, keep_alive: Callable[[], None] | None = None, deadline: float | None = None) -> None:
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
            left: list[_Item] = []
            try:
                self._write(batch, keep_alive, deadline, left)
            except BaseException:
                for it in [*left, *(x for b in batches[i + 1 :] for x in b)]:
                    if self._live(it):
                        self._requeue(it)
                raise

    def _write(
        self,
        items: list[_Item],
        keep_alive: Callable[[], None] | None,
        deadline: float | None,
        left: list[_Item],
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
                items = [it for it in items if self._live(it)]  # a rebalance may have given some of them up
                left[:] = items
                if not items:
                    return
                retry, status = self._settle(items, *self._send(self._body(items)))
            left[:] = retry
            if not retry:
                return
            if self.should_stop():
                raise InterruptedError("stopping with documents not yet written")
            attempt += 1
            self.metrics.bulk_retries.labels(status=status).inc(len(retry))
            delay = min(self.max_backoff, self.initial_backoff * (2 ** min(attempt - 1, 16)))
            delay *= 0.5 + random.random() / 2  # jitter: many consumers must not retry in step
            if deadline is not None and time.monotonic() + delay > deadline:
                raise FlushDeadline(f"{len(retry)} documents not written before the deadline")
            self._wait(delay, keep_alive)
            items = retry

    def _wait(self, delay: float, keep_alive: Callable[[], None] | None) -> None:
        wait_alive(delay, keep_alive, self.sleep)

    @staticmethod
    def _body(items: list[_Item]) -> bytes:
        """The bulk request body of these items, each with `event.ingested` = now (one time per request)."""
        now = ingested_now()
        stamp = now.encode()
        skip = len(_INGESTED_SLOT)
        body = bytearray()
        for it in items:
            action: dict[str, Any] = {"_index": it.index}
            if it.doc_id is not None:
                action["_id"] = it.doc_id
            body += orjson.dumps({"index": action})
            body += b"\n"
            line, slot = it.line, it.slot
            body += line[:slot]
            body += stamp
            body += line[slot + skip :]
            body += b"\n"
            it.ingested = now
        return bytes(body)

    def _send(self, body: bytes) -> tuple[Any, Exception | None]:
        """One bulk request: (response, None) or (None, the exception). Runs on the sender thread too."""
        t0 = time.perf_counter()
        try:
            # Only what settling reads: each item's status and error (the full answer is ~6x larger to write,
            # send and parse, for 2,000 items a request).
            return self.client.bulk(operations=body, filter_path=_BULK_FILTER), None
        except Exception as exc:  # connection refused, timeouts, 5xx/429 on the whole request
            return None, exc
        finally:
            self.metrics.bulk_latency.observe(time.perf_counter() - t0)

    def _settle(self, items: list[_Item], resp: Any, exc: Exception | None) -> tuple[list[_Item], str]:
        """The outcome of one bulk request: dead letters sent, the items to retry returned, with why."""
        if exc is not None:
            if (denied := access_error(exc)) is not None:
                raise denied from None  # configuration, not an outage: retrying cannot fix it
            status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
            if isinstance(status, int) and status not in _RETRY_STATUS and 400 <= status < 500:
                raise exc  # a request-level client error is a bug or a config problem: do not spin on it
            self.metrics.bulk_failures.labels(reason=type(exc).__name__).inc()
            return items, str(status or "unavailable")
        retry: list[_Item] = []
        done = 0
        for it, result in zip(items, resp["items"], strict=True):
            r = result.get("index") or next(iter(result.values()))
            st = r.get("status", 500)
            if 200 <= st < 300:
                done += 1
            elif st in _RETRY_STATUS:
                retry.append(it)
            else:
                self.metrics.dead_letters.labels(reason=str(st)).inc()
                error = {"status": st, "error": r.get("error"), "index": it.index}
                self.dead_letter(orjson.loads(it.stamped()), error, it.sources)
        self.metrics.documents_written.inc(done)
        return retry, "429" if retry else ""


def make_client(es: Any) -> Any:
    """An `elasticsearch.Elasticsearch` client from ElasticsearchSettings (secrets unwrapped only here)."""
    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    kwargs: dict[str, Any] = {
        "hosts": [u.strip() for u in es.url.split(",") if u.strip()],
        "serializer": OrjsonSerializer(),  # bulk answers are parsed by orjson, not the json module
        "request_timeout": es.request_timeout_seconds,
        "verify_certs": es.verify_certs,
        "retry_on_timeout": False,  # the sink retries, with backoff and back-pressure
        "max_retries": 0,
    }
    if es.ca_certs:
        kwargs["ca_certs"] = es.ca_certs
    if es.ssl_assert_fingerprint:
        kwargs["ssl_assert_fingerprint"] = es.ssl_assert_fingerprint
    if es.api_key is not None:
        kwargs["api_key"] = es.api_key.get_secret_value()
    elif es.username is not None and es.password is not None:
        kwargs["basic_auth"] = (es.username, es.password.get_secret_value())
    return Elasticsearch(**kwargs)
