"""The kafka-python client: the group consumer, producers, the admin client (topics) and the file producer."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from enricher.edges.kafka.options import client_options, sessions_topic_configs

if TYPE_CHECKING:
    from enricher.config import KafkaSettings
    from enricher.core.parsing.parser import Parser


def make_group_consumer(k: KafkaSettings, **group: Any) -> Any:
    """A kafka-python group member (`group`: group id, offset reset, session timeouts) that commits explicitly."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**client_options(k), **group, enable_auto_commit=False, max_poll_records=k.max_poll_records)


def make_reader(k: KafkaSettings) -> Any:
    """A consumer outside any group, that commits nothing (reads the state topic on a restore)."""
    from kafka import KafkaConsumer

    return KafkaConsumer(**client_options(k), enable_auto_commit=False)


def make_producer(k: KafkaSettings, **extra: Any) -> Any:
    """A producer that waits for all in-sync replicas (what we publish must not be lost)."""
    from kafka import KafkaProducer

    opts = client_options(k)
    opts.update(acks="all", linger_ms=20, retries=10)
    opts.update(extra)
    return KafkaProducer(**opts)


def make_admin(k: KafkaSettings) -> Any:
    """The admin client (topic creation in `setup`)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**client_options(k))


def ensure_topics(k: KafkaSettings, partitions: int, replication: int = 1, sessions: bool = False) -> list[str]:
    """Create the raw, state (compacted) and dead-letter topics, and with `sessions` the sessions topic
    (compacted), when missing; returns what was created."""
    from kafka.admin import NewTopic

    wanted = [
        NewTopic(k.topic, partitions, replication),
        NewTopic(
            k.state_topic,
            partitions,
            replication,
            topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"},
        ),
        NewTopic(k.dead_letter_topic, partitions, replication),
    ]
    if sessions:
        wanted.append(sessions_topic(k, partitions, replication))
    return _create_missing(k, wanted)


def ensure_sessions_topic(k: KafkaSettings) -> list[str]:
    """`run` with the Kafka output: create the sessions topic when missing, compacted, with the broker's default
    partitions and replication (`setup` makes it like the other topics); returns what was created."""
    return _create_missing(k, [sessions_topic(k, -1, -1)])


def sessions_topic(k: KafkaSettings, partitions: int, replication: int) -> Any:
    """The sessions topic as created: compacted, records as large as the sink may write (-1: broker default)."""
    from kafka.admin import NewTopic

    return NewTopic(k.sessions_topic, partitions, replication, topic_configs=sessions_topic_configs(k))


def _create_missing(k: KafkaSettings, wanted: list[Any]) -> list[str]:
    from kafka.errors import TopicAlreadyExistsError

    admin = make_admin(k)
    try:
        existing = set(admin.list_topics())
        created = []
        for t in wanted:
            if t.name in existing:
                continue
            try:
                admin.create_topics([t])
                created.append(t.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def produce_records(
    k: KafkaSettings, topic: str, records: Iterable[tuple[str, str]], producer: Any | None = None
) -> dict[str, float]:
    """Publish (key, value) records; returns counts and the rate (for `esa-enricher produce`)."""
    own = producer is None
    prod = producer or make_producer(k, compression_type="lz4" if has_lz4() else "gzip", batch_size=256 * 1024)
    n = 0
    nbytes = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        for key, value in records:
            data = value.encode("utf-8")
            prod.send(topic, key=key.encode("utf-8"), value=data)
            n += 1
            nbytes += len(data)
        prod.flush()
    finally:
        if own:
            prod.close()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"records": n, "bytes": nbytes, "seconds": round(wall, 3), "records_per_cpu_second": round(n / cpu, 1) if cpu else 0.0}


def records_from_lines(parser: Parser, lines: Iterable[str], appliance: str | None = None) -> Iterable[tuple[str, str]]:
    """Records (wrapped lines joined) keyed by the appliance their envelope names."""
    for ev in parser.parse_lines(lines, appliance):
        yield ev.appliance, ev.raw


def has_lz4() -> bool:
    """True when the lz4 codec is installed (kafka-python compresses with it, else gzip)."""
    try:
        import lz4  # noqa: F401
    except ImportError:
        return False
    return True
