"""Small fakes of the service's own edges for its unit tests: a consumer (one member of a group over an
in-memory log), a producer, and a sink. Kafka and Elasticsearch themselves are tested in tests/integration/."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.structs import TopicPartition

from enricher.edges.ports import FlushDeadline


@dataclass
class Record:
    """What the loop reads of a consumer record."""

    key: bytes | None
    value: bytes | None
    offset: int


@dataclass
class Log:
    """A topic's partitions and a group's committed offsets: what outlives one consumer."""

    topic: str
    partitions: dict[int, list[Record]] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)

    def append(self, partition: int, key: str, value: bytes) -> None:
        """Produce one record."""
        records = self.partitions.setdefault(partition, [])
        records.append(Record(key.encode(), value, len(records)))


class FakeConsumer:
    """The consumer calls the service makes, over a Log: assigns every partition at the first poll."""

    def __init__(self, log: Log, callbacks_on_poll_thread: bool = False, empty_every: int = 0) -> None:
        self.log = log
        self.empty_every = empty_every  # every n-th poll returns nothing (a fetch not back yet, on a busy machine)
        self.polls = 0
        self.callbacks_on_poll_thread = callbacks_on_poll_thread
        self.listener: Any = None
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[int, int]] = []
        self.closed = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        assert topics == [self.log.topic]
        self.listener = listener

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[Record]]:
        if not self.positions and not self.closed:
            tps = [TopicPartition(self.log.topic, p) for p in sorted(self.log.partitions)]
            self.positions = {tp: self.log.committed.get(tp.partition, 0) for tp in tps}
            self.listener.on_partitions_assigned(tps)
        out: dict[TopicPartition, list[Record]] = {}
        self.polls += 1
        if self.empty_every and self.polls % self.empty_every == 0:
            return out
        for tp, pos in self.positions.items():
            if tp in self.paused:
                continue
            got = self.log.partitions[tp.partition][pos : pos + max_records]
            if got:
                out[tp] = got
                self.positions[tp] = pos + len(got)
        if not out and timeout_ms:
            time.sleep(0.005)
        return out

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log.partitions[tp.partition])

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        got = {tp.partition: o.offset for tp, o in offsets.items()}
        self.commits.append(got)
        self.log.committed.update(got)

    def close(self, autocommit: bool = False) -> None:
        assert not autocommit
        if self.positions:
            self.listener.on_partitions_revoked(list(self.positions))
        self.positions = {}
        self.closed = True


class Future:
    """A producer's send result, as the service checks it after a flush."""

    def __init__(self, error: Exception | None = None) -> None:
        self.exception = error

    def failed(self) -> bool:
        return self.exception is not None


class FakeProducer:
    """Keeps what is sent (dead letters); `fail` makes every send fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.fail: Exception | None = None

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> Future:
        if self.fail is None:
            self.sent.append((topic, key, value))
        return Future(self.fail)

    def flush(self, timeout: float | None = None) -> None:
        pass


class FakeSink:
    """The sink interface the loop drives, writing into a dict by event.id; `down` refuses writes (retried like
    the real sinks: keep_alive while waiting, InterruptedError when the service says stop), and `hang` blocks a
    write without looking at anything (a request to a node that never answers) until `release` is set."""

    def __init__(self) -> None:
        self.written: dict[str, dict[str, Any]] = {}
        self.queue: list[tuple[Any, dict[str, Any]]] = []
        self.down = False
        self.hang = False
        self.should_stop: Callable[[], bool] = lambda: False
        self.release = False
        self.delay = 0.0  # seconds each write takes (a slow node that answers)

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        self.queue.append((owner, doc))

    def pending(self) -> int:
        return len(self.queue)

    def in_flight(self) -> int:
        return 0

    def full(self) -> bool:
        return False

    def in_flight_done(self) -> bool:
        return False

    def submit(self, keep_alive: Callable[[], None] | None = None) -> None:
        self.flush(keep_alive)

    def settle(self, keep_alive: Callable[[], None] | None = None) -> None:
        pass

    def flush(self, keep_alive: Callable[[], None] | None = None, deadline: float | None = None) -> None:
        while self.hang and not self.release:
            time.sleep(0.01)
        if self.queue:
            time.sleep(self.delay)
        while self.down:
            if self.should_stop():
                raise InterruptedError("stopping with documents not yet written")
            if deadline is not None and time.monotonic() >= deadline:
                raise FlushDeadline("not written in time")
            if keep_alive is not None:
                keep_alive()
            time.sleep(0.01)
        for _, doc in self.queue:
            self.written[doc["event"]["id"]] = doc
        self.queue.clear()

    def discard(self, owners: Any) -> int:
        owners = set(owners)
        before = len(self.queue)
        self.queue = [(o, d) for o, d in self.queue if o not in owners]
        return before - len(self.queue)

    def reown(self, owner: Any) -> None:
        pass

    def close(self) -> None:
        pass
