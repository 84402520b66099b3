"""The service connected to the configured Kafka and outputs (what `esa-enricher run` starts)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from enricher.config import Config
from enricher.core.pipeline import Pipeline
from enricher.service.loop import Service
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher")

# A member that died (kill -9, crash) is noticed after this long, then its partitions move; the clients'
# default (45 s) would hold them that long.
SESSION_TIMEOUT_MS = 10_000


def connect(cfg: Config, metrics: Metrics, build_pipeline: Callable[[], Pipeline]) -> Service:
    """A Service with its consumer, producers, state store and sinks made from `cfg` (access checked first)."""
    from enricher.edges.kafka import make_consumer
    from enricher.edges.kafka.confluent import check_access
    from enricher.edges.kafka.kafka_python import make_producer, make_reader
    from enricher.edges.sinks.elasticsearch import make_client
    from enricher.edges.state.kafka import KafkaStateStore

    k = cfg.kafka
    check_access(k)
    consumer = make_consumer(k, SESSION_TIMEOUT_MS)
    producer = make_producer(k)
    snapshots = KafkaStateStore(
        # No producer compression: the chunks are zlib-compressed already (encode_state); gzip on top spent CPU on
        # the sender thread for nothing.
        make_producer(k, max_request_size=8 << 20), lambda: make_reader(k), k.state_topic
    )
    sessions_producer = None
    if "kafka" in cfg.service.outputs:
        from enricher.edges.kafka.confluent import make_sessions_producer
        from enricher.edges.kafka.kafka_python import ensure_sessions_topic

        if ensure_sessions_topic(k):
            log.info("created the sessions topic %s (compacted)", k.sessions_topic)
        sessions_producer = make_sessions_producer(k)
    es_client = make_client(cfg.elasticsearch) if "elasticsearch" in cfg.service.outputs else None
    return Service(cfg, consumer, producer, es_client, snapshots, build_pipeline, metrics, sessions_producer)
