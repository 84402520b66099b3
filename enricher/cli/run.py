"""`esa-enricher run`: the streaming service (Kafka → enricher → Elasticsearch and/or the sessions topic)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from enricher.accel.gcpace import paced_collection
from enricher.cli.options import config_of
from enricher.cli.wiring import build_pipeline
from enricher.errors import ConfigError

_SESSION_TIMEOUT_MS = 10_000


def cmd_run(a: argparse.Namespace) -> int:
    """The streaming service: Kafka → enricher → Elasticsearch and/or the sessions topic (`service.outputs`)."""
    import logging

    from enricher.edges.kafka import make_consumer
    from enricher.edges.kafka.confluent import check_access
    from enricher.edges.kafka.kafka_python import make_producer, make_reader
    from enricher.edges.sinks.elasticsearch import make_client
    from enricher.edges.state.kafka import KafkaStateStore
    from enricher.service.loop import Service
    from enricher.telemetry import HealthServer, Metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the client's connection chatter
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    cfg = config_of(a)
    metrics = Metrics()
    health_box: list[Any] = []  # the service's health, once it exists
    try:
        health = HealthServer(
            metrics,
            cfg.service.metrics_host,
            cfg.service.metrics_port,
            lambda: health_box[0].health() if health_box else (False, "starting"),
        )
    except OSError as exc:
        raise ConfigError(
            "service.metrics_port",
            f"cannot listen on {cfg.service.metrics_host}:{cfg.service.metrics_port}: {exc.strerror or exc} "
            "(another enricher on this machine? use another port, or 0 for any free one)",
        ) from None
    k = cfg.kafka
    check_access(k)
    # A member that died (kill -9, crash) is noticed after _SESSION_TIMEOUT_MS, then its partitions move; the
    # clients' default (45 s) would hold them that long.
    consumer = make_consumer(k, _SESSION_TIMEOUT_MS)
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
            logging.getLogger("esa_enricher").info("created the sessions topic %s (compacted)", k.sessions_topic)
        sessions_producer = make_sessions_producer(k)
    es_client = make_client(cfg.elasticsearch) if "elasticsearch" in cfg.service.outputs else None
    service = Service(
        cfg, consumer, producer, es_client, snapshots, lambda: build_pipeline(cfg), metrics, sessions_producer
    )
    health_box.append(service)
    health.start()
    logging.getLogger("esa_enricher").info("consuming %s with the %s client", k.topic, k.client)
    logging.getLogger("esa_enricher").info(
        "metrics and health on http://%s:%d/metrics /healthz", cfg.service.metrics_host, health.port
    )
    try:
        with paced_collection(cfg.service.gc_interval_seconds):
            return service.run(exit_when_idle=a.exit_when_idle)
    finally:
        health.stop()


def register(sub: Any) -> None:
    """Add `run` to the sub-commands."""
    p = sub.add_parser("run", help="run the streaming service (Kafka → Elasticsearch and/or the sessions topic)")
    p.add_argument("-c", "--config", help="TOML config file (environment variables override it)")
    p.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS", help="write open sessions and exit after this long without input"
    )
    p.set_defaults(func=cmd_run)
