"""The Kafka edge: both clients, behind one choice (`kafka.client`), used by the source, the sinks and the state store.

- `options`: connection options of both clients (TLS, SASL) and the sessions topic's size options.
- `kafka_python`: kafka-python's consumer, producers, admin client (topics), and the file producer.
- `confluent`: the consumer group on librdkafka behind kafka-python's API subset, the sessions topic's
  producer, and the access check that names why TLS or SASL is refused.
Neither client module imports the other; this package's `make_consumer` picks one (imported when called).

Topic layout (defaults): `esa-mail-logs` raw lines (key = appliance host, value = the raw record),
`esa-mail-logs-state` compacted snapshots of the windowed state (one partition per source partition),
`esa-mail-logs-dlq` documents Elasticsearch refused, with the error and the source offsets; with the Kafka
output, `esa-sessions` (compacted) the session documents keyed by `event.id` (enricher/edges/sinks/kafka_topic.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enricher.config import KafkaSettings
    from enricher.edges.ports import Source


def make_consumer(k: KafkaSettings, session_timeout_ms: int) -> Source:
    """The consumer group member of `run`, on the client `kafka.client` names (the same `Source` either way)."""
    common: dict[str, Any] = {
        "group_id": k.group_id,
        "auto_offset_reset": k.auto_offset_reset,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": session_timeout_ms // 4,
    }
    if k.client == "confluent":
        from enricher.edges.kafka.confluent import ConfluentConsumer

        return ConfluentConsumer(k, **common)
    from enricher.edges.kafka.kafka_python import make_group_consumer

    consumer: Source = make_group_consumer(k, **common)  # kafka-python's KafkaConsumer (untyped)
    return consumer
