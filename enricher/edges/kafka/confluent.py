"""The librdkafka client (confluent-kafka): the consumer group source behind the kafka-python API subset the service
uses (the `Source` port), the sessions topic's producer, and the access check.

Why: kafka-python decodes every record in Python (≈19 µs a record, more than our own processing); librdkafka
decodes in C on its own threads. `kafka.client = "confluent"` selects this adapter; the service does not know
which client it drives.

The subset is the `Source` port (enricher/edges/ports.py). Partitions are kafka-python `TopicPartition`s on
this side, so they compare equal whichever client made them.

Semantics kept from kafka-python:
- Offsets are only ever committed explicitly (`enable.auto.commit` and `enable.auto.offset.store` off); a commit
  refused because the group is rebalancing raises kafka-python's `CommitFailedError`.
- The rebalance callbacks run inside `poll()` (as librdkafka serves them from `consume()`), on the caller's
  thread: `callbacks_on_poll_thread` says so, and the service then restores an assignment's state inside the
  callback instead of pausing the partitions until its main loop does (a paused partition that librdkafka
  has not started fetching yet gives its first records ~0.65 s after `resume`, against ~0.1 s after an
  unpaused assignment). On an assignment the listener runs first and the seeks and pauses it asks for are
  applied with the assignment (librdkafka refuses a seek of a partition it has not started fetching).
- A forced eviction calls `on_partitions_lost` (when the listener has it, as kafka-python's does; its default
  delegates to `on_partitions_revoked`). `close()` leaves the group without committing; the listener hears of
  the revocation first, as with kafka-python 3's close.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kafka.errors import CommitFailedError
from kafka.structs import TopicPartition

from enricher.edges.kafka.options import FRAMING_BYTES, confluent_options
from enricher.errors import EnricherError

if TYPE_CHECKING:
    from enricher.config import KafkaSettings

log = logging.getLogger("esa_enricher.kafka")

# Errors of a commit that mean "the group moved on": the same case as kafka-python's CommitFailedError.
_REBALANCE_ERRORS = frozenset(
    ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "FENCED_INSTANCE_ID", "_ASSIGNMENT_LOST", "_STATE")
)


class KafkaAccessError(EnricherError):
    """The brokers refuse the configured TLS or SASL settings (or cannot be reached at all)."""


def check_access(k: KafkaSettings, timeout: float = 30.0) -> None:
    """Fail fast with librdkafka's own reason when TLS or SASL is refused; a no-op on PLAINTEXT.

    kafka-python reports a refused SCRAM password or an untrusted certificate only as "Unable to bootstrap" after
    its timeout; librdkafka names the cause (SASL authentication error, SSL handshake failed). The commands that
    talk to Kafka (setup, produce, run, listen) call this once before making their clients.
    """
    if k.security_protocol == "PLAINTEXT":
        return
    import time

    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []

    def on_error(err: Any) -> None:
        if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            refused.append(err.str())

    conf: dict[str, Any] = {**confluent_options(k), "error_cb": on_error, "logger": log}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
        if refused:
            what = "SASL credentials" if "SASL" in refused[0] else "TLS settings (certificate not accepted)"
            raise KafkaAccessError(f"Kafka at {k.bootstrap_servers} refused the {what}: {refused[0]}")
        if time.monotonic() >= deadline:
            raise KafkaAccessError(f"Kafka at {k.bootstrap_servers} did not answer over {k.security_protocol} within {timeout:.0f} s")


class Record:
    """One consumed record: what the service reads of it."""

    __slots__ = ("offset", "key", "value")

    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset = offset
        self.key = key
        self.value = value


class ConfluentConsumer:
    """A librdkafka group consumer that looks like the part of kafka-python's KafkaConsumer the service uses."""

    callbacks_on_poll_thread = True  # the listener runs inside poll(), on the thread that polls

    def __init__(
        self,
        k: KafkaSettings,
        group_id: str,
        auto_offset_reset: str,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
    ) -> None:
        from confluent_kafka import Consumer

        conf = {
            **confluent_options(k),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": auto_offset_reset,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            # Eager rebalancing, as kafka-python's: every partition is revoked, then the new set assigned.
            "partition.assignment.strategy": "range,roundrobin",
            "error_cb": log_error,
        }
        self._c = Consumer(conf)
        self._listener: Any = None
        # Inside the assignment callback: (start offsets, partitions to pause) the listener asked for.
        self._assigning: tuple[dict[TopicPartition, int], set[TopicPartition]] | None = None
        self._ctp: dict[TopicPartition, Any] = {}  # kafka-python TopicPartition -> confluent's (no offset)

    # -- conversions --------------------------------------------------------------------------------------
    def _to_c(self, tp: TopicPartition, offset: int | None = None) -> Any:
        from confluent_kafka import TopicPartition as CTopicPartition

        if offset is not None:
            return CTopicPartition(tp.topic, tp.partition, offset)
        c = self._ctp.get(tp)
        if c is None:
            c = self._ctp[tp] = CTopicPartition(tp.topic, tp.partition)
        return c

    # -- group membership ---------------------------------------------------------------------------------
    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        """Join the group; `listener` gets `on_partitions_revoked(tps)` / `on_partitions_assigned(tps)`."""
        self._listener = listener
        self._c.subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        # The listener runs first; the seeks and pauses it asks for are applied with the assignment: librdkafka
        # refuses to seek a partition assigned in this callback but not fetching yet ("Erroneous state"), and an
        # offset given to assign() also saves the committed-offset query of that partition.
        from confluent_kafka import OFFSET_INVALID
        from confluent_kafka import TopicPartition as CTopicPartition

        starts: dict[TopicPartition, int] = {}
        paused: set[TopicPartition] = set()
        self._assigning = (starts, paused)
        try:
            if self._listener is not None:
                self._listener.on_partitions_assigned([TopicPartition(p.topic, p.partition) for p in partitions])
        finally:
            self._assigning = None
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        consumer.assign([CTopicPartition(tp.topic, tp.partition, starts.get(tp, OFFSET_INVALID)) for tp in tps])
        if paused:
            consumer.pause([self._to_c(tp) for tp in tps if tp in paused])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if self._listener is not None:
            self._listener.on_partitions_revoked([TopicPartition(p.topic, p.partition) for p in partitions])
        consumer.unassign()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = getattr(self._listener, "on_partitions_lost", None) or getattr(self._listener, "on_partitions_revoked", None)
        if lost is not None:
            lost([TopicPartition(p.topic, p.partition) for p in partitions])
        consumer.unassign()

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned to this member."""
        return {TopicPartition(p.topic, p.partition) for p in self._c.assignment()}

    # -- reading ------------------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Up to `max_records` (default 500) records, grouped by partition in offset order (rebalance callbacks run
        here)."""
        msgs = self._c.consume(max_records or 500, timeout_ms / 1000.0)
        out: dict[TopicPartition, list[Record]] = {}
        if not msgs:
            return out
        # A consumed message without an error always names its topic, partition and offset (typed optional).
        by_key: dict[tuple[Any, Any], list[Record]] = {}
        last_key: tuple[Any, Any] | None = None
        last: list[Record] = []
        for m in msgs:
            if m.error() is not None:
                _message_error(m.error())
                continue
            key = (m.topic(), m.partition())
            if key != last_key:
                last_key = key
                last = by_key.get(key) or by_key.setdefault(key, [])
            last.append(Record(m.offset(), m.key(), m.value()))  # type: ignore[arg-type]
        for (topic, partition), records in by_key.items():
            out[TopicPartition(topic, partition)] = records
        return out

    def pause(self, *tps: TopicPartition) -> None:
        """Stop fetching these partitions (records already fetched may still come once; the service seeks back)."""
        if self._assigning is not None:  # inside the assignment callback: applied with the assignment
            self._assigning[1].update(tps)
            return
        if tps:
            self._c.pause([self._to_c(tp) for tp in tps])

    def resume(self, *tps: TopicPartition) -> None:
        """Fetch these partitions again."""
        if self._assigning is not None:
            self._assigning[1].difference_update(tps)
            return
        if tps:
            self._c.resume([self._to_c(tp) for tp in tps])

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read `partition` from `offset` next."""
        if self._assigning is not None:
            self._assigning[0][partition] = offset
            return
        self._c.seek(self._to_c(partition, offset))

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as last fetched (None before the first fetch)."""
        try:
            got = self._c.get_watermark_offsets(self._to_c(partition), cached=True)
        except Exception:  # noqa: BLE001 - a metric: unknown is fine
            return None
        if not got or got[1] < 0:
            return None
        return int(got[1])

    # -- committing and closing ---------------------------------------------------------------------------
    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        """Commit these offsets synchronously (kafka-python's `OffsetAndMetadata` values, or plain ints)."""
        from confluent_kafka import KafkaException

        parts = [self._to_c(tp, getattr(o, "offset", o)) for tp, o in offsets.items()]
        try:
            done = self._c.commit(offsets=parts, asynchronous=False)
        except KafkaException as exc:
            _raise_commit_error(exc.args[0] if exc.args else None, exc)
            raise
        for p in done or ():
            if p.error is not None:
                _raise_commit_error(p.error, None)
                raise RuntimeError(f"commit of {p.topic}/{p.partition} failed: {p.error}")

    def close(self, autocommit: bool = False) -> None:
        """Leave the group (the listener hears of the revocation). Never commits by itself."""
        if autocommit:
            raise ValueError("offsets are committed by checkpoints only")
        self._c.close()


def _raise_commit_error(err: Any, cause: BaseException | None) -> None:
    name = err.name() if hasattr(err, "name") else ""
    if name in _REBALANCE_ERRORS:
        raise CommitFailedError(str(err)) from cause


def _message_error(err: Any) -> None:
    from confluent_kafka import KafkaException

    if err.fatal():
        raise KafkaException(err)
    log.warning("consumer: %s", err)  # transient (broker down, partition moving): librdkafka retries by itself


def log_error(err: Any) -> None:
    """librdkafka's own messages through our logger (no configuration values in them, so no secrets)."""
    if err.fatal():
        log.error("kafka client: %s", err)
    else:
        log.debug("kafka client: %s", err)


def make_sessions_producer(k: KafkaSettings) -> Any:
    """The idempotent librdkafka producer of the sessions topic (enricher/edges/sinks/kafka_topic.py)."""
    from confluent_kafka import Producer

    return Producer(
        {
            **confluent_options(k),
            "enable.idempotence": True,  # implies acks=all, retries without duplicates or reordering
            "linger.ms": 20,
            "compression.type": "lz4",
            # The Java clients' partitioner: a key lands where Kafka Connect, Logstash or Vector would put it.
            "partitioner": "murmur2_random",
            "message.max.bytes": k.sessions_max_bytes + FRAMING_BYTES,
            "error_cb": log_error,
        }
    )
