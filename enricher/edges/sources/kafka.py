"""Kafka edges: client options (TLS, SASL), the consumer group source, and the file producer.

Topic layout (defaults): `esa-mail-logs` raw lines (key = appliance host, value = the raw record),
`esa-mail-logs-state` compacted snapshots of the windowed state (one partition per source partition),
`esa-mail-logs-dlq` documents Elasticsearch refused, with the error and the source offsets; with the Kafka
output, `esa-sessions` (compacted) the session documents keyed by `event.id` (enricher/edges/sinks/kafka_topic.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from enricher.errors import ConfigError

if TYPE_CHECKING:
    from enricher.config import KafkaSettings
    from enricher.core.parsing.parser import Parser


def client_options(k: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by consumers, producers and the admin client (secrets unwrapped here only)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in k.bootstrap_servers.split(",") if s.strip()],
        "client_id": k.client_id,
        "security_protocol": k.security_protocol,
    }
    if k.security_protocol in ("SSL", "SASL_SSL"):
        opts.update(
            ssl_cafile=k.ssl_cafile,
            ssl_certfile=k.ssl_certfile,
            ssl_keyfile=k.ssl_keyfile,
            ssl_check_hostname=k.ssl_check_hostname,
        )
        if k.ssl_password is not None:
            opts["ssl_password"] = k.ssl_password.get_secret_value()
    if k.security_protocol.startswith("SASL"):
        mechanism, username, password = sasl_credentials(k)
        opts.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
    return opts


def sasl_credentials(k: KafkaSettings) -> tuple[str, str, str]:
    """(mechanism, user, password) of a SASL protocol; all three are required."""
    if not k.sasl_mechanism or not k.sasl_username or k.sasl_password is None:
        raise ConfigError("kafka.sasl_mechanism", "SASL needs sasl_mechanism, sasl_username and sasl_password")
    return k.sasl_mechanism, k.sasl_username, k.sasl_password.get_secret_value()


def make_consumer(k: KafkaSettings, session_timeout_ms: int) -> Any:
    """The consumer group member of `run`, on the client `kafka.client` names (same API either way)."""
    common = {"group_id": k.group_id, "auto_offset_reset": k.auto_offset_reset, "session_timeout_ms": session_timeout_ms,
              "heartbeat_interval_ms": session_timeout_ms // 4}
    if k.client == "confluent":
        from enricher.edges.sources.kafka_confluent import ConfluentConsumer

        return ConfluentConsumer(k, **common)
    from kafka import KafkaConsumer

    return KafkaConsumer(**client_options(k), **common, enable_auto_commit=False, max_poll_records=k.max_poll_records)


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

    from enricher.edges.sinks.kafka_topic import topic_configs

    return NewTopic(k.sessions_topic, partitions, replication, topic_configs=topic_configs(k))


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
    prod = producer or make_producer(k, compression_type="lz4" if _has_lz4() else "gzip", batch_size=256 * 1024)
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


def _has_lz4() -> bool:
    try:
        import lz4  # noqa: F401
    except ImportError:
        return False
    return True
