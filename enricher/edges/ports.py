"""The interfaces between the core and its edges: where lines come from, where documents go, where state lives.

These are `typing.Protocol`s: an implementation conforms by shape, without inheriting. What each one promises
is pinned by one contract test suite run over every implementation (tests/unit/test_contracts.py; the
implementations against real services run under the `integration` marker):
- `LineSource`: replay's input, an iterable of decoded lines (`enricher.edges.sources.files.read_lines`).
- `Source`: the consumer group the service drives (kafka-python's `KafkaConsumer`, or
  `enricher.edges.kafka.confluent.ConfluentConsumer` on librdkafka).
- `Sink`: where documents go (`NdjsonSink`); `BatchSink` adds what the service drives for back-pressure and
  rebalances (`ElasticsearchSink`, `KafkaTopicSink`, `Fanout`).
- `StateStore`: durable checkpoints of a partition's windowed state (`MemoryStateStore`, `KafkaStateStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from enricher.errors import EnricherError

# Replay reads physical lines (invalid UTF-8 already replaced); the pipeline joins wrapped records itself.
LineSource = Iterable[str]

# What a sink calls for a document it cannot write, ever: (document, error, the source offsets it came from).
DeadLetter = Callable[[dict[str, Any], dict[str, Any], list[Any]], None]

# Run by a sink while it waits (back-off, slow acknowledgements): the service pauses its partitions and polls.
KeepAlive = Callable[[], None]


class FlushDeadline(Exception):
    """`flush(deadline=…)` ran out of time; the documents not written are still queued."""


class SinkClosed(EnricherError):
    """A document was given to a sink after `close()`: a bug in the caller (nothing would ever write it)."""


class StateStoreError(EnricherError):
    """A checkpoint could not be written, or the one found cannot be restored (incomplete, corrupt)."""


@dataclass(frozen=True)
class Checkpoint:
    """What a restore gets back."""

    number: int
    offset: int  # the next source offset to read
    state: dict[str, Any]


@runtime_checkable
class Record(Protocol):
    """One consumed record: what the service reads of it."""

    offset: int
    key: bytes | None
    value: bytes | None


@runtime_checkable
class Source(Protocol):
    """A consumer group member (the subset of kafka-python's `KafkaConsumer` the service uses). Partitions are
    kafka-python `TopicPartition`s whichever client reads them. A source whose listener runs inside `poll()` on
    the polling thread says so with a true `callbacks_on_poll_thread` attribute (optional: absent means false)."""

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        """Join the group; `listener` hears `on_partitions_revoked(tps)` / `on_partitions_assigned(tps)`."""

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Mapping[Any, Sequence[Record]]:
        """Records by partition, in offset order (may run the rebalance listener)."""

    def pause(self, *partitions: Any) -> None:
        """Stop fetching these partitions (records already fetched may still come once)."""

    def resume(self, *partitions: Any) -> None:
        """Fetch these partitions again."""

    def seek(self, partition: Any, offset: int) -> None:
        """Read `partition` from `offset` next."""

    def assignment(self) -> set[Any]:
        """The partitions assigned to this member."""

    def commit(self, offsets: Any) -> None:
        """Commit `{partition: OffsetAndMetadata}` synchronously (`CommitFailedError` while rebalancing)."""

    def highwater(self, partition: Any) -> int | None:
        """The partition's end offset as last fetched (None when unknown)."""

    def close(self, autocommit: bool) -> None:
        """Leave the group (the listener hears of the revocation); the service passes `autocommit=False`."""


@runtime_checkable
class Sink(Protocol):
    """Where documents go."""

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document (with the source offsets it came from, for dead letters, and its partition)."""

    def flush(self, keep_alive: KeepAlive | None = None, deadline: float | None = None) -> None:
        """Write everything queued; returns when each document is written or dead-lettered (idempotent)."""

    def close(self) -> None:
        """Stop; a later `add` raises `SinkClosed`."""


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink the service drives: one batch in flight while it processes, back-pressure, rebalances."""

    def pending(self) -> int:
        """Documents queued and not yet sent."""

    def in_flight(self) -> int:
        """Documents sent and not yet settled."""

    def full(self) -> bool:
        """True when a batch is due by size."""

    def in_flight_done(self) -> bool:
        """True when an answer is in and waits to be settled."""

    def submit(self, keep_alive: KeepAlive | None = None) -> None:
        """Settle what is in flight, then send what is queued in the background."""

    def settle(self, keep_alive: KeepAlive | None = None) -> None:
        """Act on the answers in: retries, dead letters, metrics."""

    def discard(self, owners: Any) -> int:
        """Drop what is queued for these owners (partitions given up); returns how many were queued."""

    def reown(self, owner: Any) -> None:
        """An owner (partition) is assigned again."""


@runtime_checkable
class StateStore(Protocol):
    """Where checkpoints of a source partition's windowed state live."""

    def save(self, topic: str, partition: int, number: int, offset: int, state: dict[str, Any]) -> None:
        """Write checkpoint `number` of a source partition durably (returns when acknowledged)."""

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        """The latest complete checkpoint of a source partition, or None."""

    def load_many(self, topic: str, partitions: list[int]) -> dict[int, Checkpoint | None]:
        """`load` of several partitions at once (what an assignment needs)."""
